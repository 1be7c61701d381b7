"""``GET /mlfactory/api/budget``: the owner's budgets and notices, fetched from the platform
service for JupyterLab's status bar.

The browser cannot call the service itself without the service's own OAuth cookie, so the
server asks on the owner's behalf with its hub token (``JUPYTERHUB_API_TOKEN``), which the
hub config grants ``access:services!service=mlfactory``. Answers are cached briefly so that
many open tabs polling at once cost the service one request.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .handlers import MLFactoryAPIHandler

log = logging.getLogger(__name__)

SERVICE_URL_ENV = "MLFACTORY_SERVICE_URL"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"  # noqa: S105 (a variable name, not a secret)
DEFAULT_PREFIX = "/services/mlfactory/"
TIMEOUT_S = 5.0
CACHE_S = 20.0

NOT_CONFIGURED = (
    "The platform service is not configured for this server ({what} is unset), so budgets "
    "are not shown here. Ask your hub admin if you expected to see them."
)
UNREACHABLE = (
    "The platform service cannot be reached right now, so your budgets cannot be shown. "
    "Try again in a minute; if it persists, tell your hub admin."
)
REFUSED = (
    "The platform service refused this server's request ({code}): the server's hub token "
    "lacks access to it. Ask your hub admin to grant servers the "
    "'access:services!service=mlfactory' scope."
)
NOT_FOUND = (
    "The platform service has no budget endpoint at the configured address (404). "
    "Ask your hub admin to check MLFACTORY_SERVICE_URL."
)
BAD_ANSWER = (
    "The platform service answered with something other than a JSON object; "
    "the server log has details. Tell your hub admin if this persists."
)
SERVICE_FAILED = "The platform service failed ({code}): {error} Try again in a minute."

# Where the cache reads the time; monotonic so a clock change cannot pin a stale answer.
clock: Callable[[], float] = time.monotonic


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]


_cache: dict[tuple[str, str], tuple[float, Answer]] = {}
_inflight: dict[tuple[str, str], asyncio.Future[Answer]] = {}


def clear_cache() -> None:
    _cache.clear()
    _inflight.clear()


def me_url(service_url: str) -> str:
    """The service's ``api/me`` URL from MLFACTORY_SERVICE_URL.

    Accepts the service's bare address (``http://127.0.0.1:10101``, as in the hub's
    ``services`` config) or one that already ends in its prefix: a hub-managed service
    serves under ``/services/<name>/`` even when reached directly.
    """
    parts = urlsplit(service_url.strip())
    path = parts.path if parts.path not in ("", "/") else DEFAULT_PREFIX
    path = path.rstrip("/") + "/api/me"
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def _error(status: int, reason: str, message: str) -> Answer:
    # `reason` lets the status bar tell "not set up here" (hide) from "down" (say so)
    return Answer(status, {"message": message, "reason": reason})


def _service_error(e: HTTPClientError, url: str) -> Answer:
    code = e.code
    if code in (401, 403):
        return _error(502, "refused", REFUSED.format(code=code))
    if code == 404:
        return _error(502, "not-found", NOT_FOUND)
    detail = ""
    if e.response is not None:
        try:
            detail = str(json.loads(e.response.body or b"{}").get("error") or "")
        except (ValueError, AttributeError):  # not JSON, or JSON but not an object
            detail = ""
    log.warning("Platform service at %s answered %s: %s", url, code, detail or e)
    if code < 400:  # a redirect (not followed): a login page, never budgets
        return _error(502, "service-error", BAD_ANSWER)
    message = SERVICE_FAILED.format(code=code, error=f"{detail.rstrip('.')}." if detail else "")
    # the service's 5xx is "down for now"; its 4xx means this server asked wrongly
    return _error(503 if code >= 500 else 502, "service-error", " ".join(message.split()))


async def _ask_service(url: str, token: str) -> Answer:
    request = HTTPRequest(
        url,
        headers={"Authorization": f"token {token}", "Accept": "application/json"},
        connect_timeout=TIMEOUT_S,
        request_timeout=TIMEOUT_S,
        follow_redirects=False,
    )
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as e:
        if e.code == 599:  # tornado's code for a timeout or a dropped connection
            log.warning("Platform service at %s did not answer: %s", url, e)
            return _error(503, "unreachable", UNREACHABLE)
        return _service_error(e, url)
    except OSError as e:  # refused, unresolvable host, reset
        log.warning("Platform service at %s cannot be reached: %s", url, e)
        return _error(503, "unreachable", UNREACHABLE)
    try:
        body = json.loads(response.body)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        log.warning("Platform service at %s answered non-JSON: %.200r", url, response.body)
        return _error(502, "service-error", BAD_ANSWER)
    return Answer(200, body)


async def _ask_and_cache(key: tuple[str, str]) -> Answer:
    try:
        answer = await _ask_service(*key)
        if answer.status == 200:
            _cache[key] = (clock() + CACHE_S, answer)
        return answer
    finally:
        _inflight.pop(key, None)


async def fetch_budget(url: str, token: str) -> Answer:
    """The service's answer for this token, from the cache when fresh.

    Successes are kept for CACHE_S; failures are not kept, but callers arriving while a
    request is out share it, whatever its outcome.
    """
    key = (url, token)
    cached = _cache.get(key)
    if cached is not None and clock() < cached[0]:
        return cached[1]
    pending = _inflight.get(key)
    if pending is None:
        pending = _inflight[key] = asyncio.ensure_future(_ask_and_cache(key))
    # shielded: one caller going away must not cancel the request the others wait on
    return await asyncio.shield(pending)


class BudgetHandler(MLFactoryAPIHandler):
    """The server owner's spend against their budgets, and the notices the service fired."""

    auth_resource = "mlfactory:budget"
    # the status bar polls this; polling must not keep an idle server from being culled
    _track_activity = False

    @web.authenticated
    @authorized
    async def get(self) -> None:
        # the budgets are the owner's (the token is theirs): not for people it is shared with
        self.require_owner()
        service_url = os.environ.get(SERVICE_URL_ENV, "").strip()
        token = os.environ.get(TOKEN_ENV, "").strip()
        if not service_url or not token:
            answer = _error(
                503,
                "not-configured",
                NOT_CONFIGURED.format(what=SERVICE_URL_ENV if not service_url else TOKEN_ENV),
            )
        else:
            answer = await fetch_budget(me_url(service_url), token)
        self.set_status(answer.status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(answer.body))


handlers = [(r"/mlfactory/api/budget", BudgetHandler)]
