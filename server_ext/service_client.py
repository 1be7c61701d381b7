"""Calls from this server to the mlfactory platform service, shared by the proxies
(budget, culling) and the activity reporter.

The server reaches the service at ``$MLFACTORY_SERVICE_URL`` with its own hub token
(``$JUPYTERHUB_API_TOKEN``), which the hub config grants
``access:services!service=mlfactory``; the service treats the token's owner as the user.
Every outcome becomes an :class:`Answer` whose body is what a browser may see (JSON
``{"message", "reason"}`` on failure, never the token or a traceback); what went wrong in
technical terms is kept apart in ``Answer.problem`` for the server log.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode, urlsplit, urlunsplit

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

SERVICE_URL_ENV = "MLFACTORY_SERVICE_URL"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"  # noqa: S105 (a variable name, not a secret)
DEFAULT_PREFIX = "/services/mlfactory/"
TIMEOUT_S = 5.0

NOT_CONFIGURED = (
    "The platform service is not configured for this server ({var} is unset), so "
    "{consequence}. Ask your hub admin if that is unexpected."
)
UNREACHABLE = (
    "The platform service cannot be reached right now, so {consequence}. "
    "Try again in a minute; if it persists, tell your hub admin."
)
REFUSED = (
    "The platform service refused this server's request ({code}): the server's hub token "
    "lacks access to it. Ask your hub admin to grant servers the "
    "'access:services!service=mlfactory' scope."
)
NOT_FOUND = (
    "The platform service has no {endpoint} endpoint at the configured address (404). "
    "Ask your hub admin to check MLFACTORY_SERVICE_URL."
)
BAD_ANSWER = (
    "The platform service answered with something other than a JSON object; "
    "the server log has details. Tell your hub admin if this persists."
)
SERVICE_FAILED = "The platform service failed ({code}): {error} Try again in a minute."


@dataclass(frozen=True)
class Wording:
    """How one caller's failures read to the user."""

    endpoint: str  # "budget": "...has no budget endpoint..."
    unreachable: str  # "your budgets cannot be shown"
    not_configured: str  # "budgets are not shown here"


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    # for the server log only: the technical cause of a failure, "" on success
    problem: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


@dataclass(frozen=True)
class Target:
    """Where the service is and the token to show it."""

    service_url: str
    token: str

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        return api_url(self.service_url, path, query)


def target_from_env(environ: Mapping[str, str] = os.environ) -> Target | str:
    """The configured service, or the name of the variable that is missing."""
    service_url = environ.get(SERVICE_URL_ENV, "").strip()
    token = environ.get(TOKEN_ENV, "").strip()
    if not service_url:
        return SERVICE_URL_ENV
    if not token:
        return TOKEN_ENV
    return Target(service_url, token)


def api_url(service_url: str, path: str, query: Mapping[str, str] | None = None) -> str:
    """``<service>/api/<path>`` from MLFACTORY_SERVICE_URL.

    Accepts the service's bare address (``http://127.0.0.1:10101``, as in the hub's
    ``services`` config) or one that already ends in its prefix: a hub-managed service
    serves under ``/services/<name>/`` even when reached directly.
    """
    parts = urlsplit(service_url.strip())
    base = parts.path if parts.path not in ("", "/") else DEFAULT_PREFIX
    full = base.rstrip("/") + "/api/" + path.lstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, full, urlencode(query or {}), ""))


def error(status: int, reason: str, message: str, problem: str = "") -> Answer:
    # `reason` lets the browser tell "not set up here" (hide) from "down" (say so)
    return Answer(status, {"message": message, "reason": reason}, problem or message)


def not_configured(var: str, wording: Wording) -> Answer:
    message = NOT_CONFIGURED.format(var=var, consequence=wording.not_configured)
    return error(503, "not-configured", message)


def _detail(e: HTTPClientError) -> str:
    """The service's own ``{"error": ...}`` text, if it sent one."""
    if e.response is None:
        return ""
    try:
        return str(json.loads(e.response.body or b"{}").get("error") or "")
    except (ValueError, AttributeError):  # not JSON, or JSON but not an object
        return ""


def _service_error(
    e: HTTPClientError, url: str, wording: Wording, passthrough: frozenset[int]
) -> Answer:
    code = e.code
    detail = _detail(e)
    problem = f"Platform service at {url} answered {code}: {detail or e}"
    if code in passthrough and detail:
        # a refusal the user can act on (no "Keep running" presses left): their words, as is
        return error(code, "refused-by-service", detail, problem)
    if code in (401, 403):
        return error(502, "refused", REFUSED.format(code=code), problem)
    if code == 404:
        return error(502, "not-found", NOT_FOUND.format(endpoint=wording.endpoint), problem)
    if code < 400:  # a redirect (not followed): a login page, never the service's answer
        return error(502, "service-error", BAD_ANSWER, problem)
    message = SERVICE_FAILED.format(code=code, error=f"{detail.rstrip('.')}." if detail else "")
    # the service's 5xx is "down for now"; its 4xx means this server asked wrongly
    return error(503 if code >= 500 else 502, "service-error", " ".join(message.split()), problem)


async def call(
    url: str,
    token: str,
    wording: Wording,
    *,
    method: str = "GET",
    body: Any = None,
    timeout_s: float = TIMEOUT_S,
    passthrough: frozenset[int] = frozenset(),
) -> Answer:
    """One request to the service; never raises for anything the network or service does.

    A 2xx with a JSON object is passed on; 204 gives ``{}``. Error codes
    in ``passthrough`` keep their status and carry the service's ``error`` as the message.
    """
    headers = {"Authorization": f"token {token}", "Accept": "application/json"}
    if body is not None:
        headers["Content-Type"] = "application/json"
    request = HTTPRequest(
        url,
        method=method,
        headers=headers,
        body=json.dumps(body) if body is not None else None,
        connect_timeout=timeout_s,
        request_timeout=timeout_s,
        follow_redirects=False,
    )
    unreachable = UNREACHABLE.format(consequence=wording.unreachable)
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as e:
        if e.code == 599:  # tornado's code for a timeout or a dropped connection
            return error(503, "unreachable", unreachable, f"{url} did not answer: {e}")
        return _service_error(e, url, wording, passthrough)
    except OSError as e:  # refused, unresolvable host, reset
        return error(503, "unreachable", unreachable, f"{url} cannot be reached: {e}")
    if response.code == 204:  # "done", nothing to say (the activity report's answer)
        return Answer(204, {})
    try:
        parsed = json.loads(response.body)
    except ValueError:
        parsed = None
    if not isinstance(parsed, dict):
        problem = f"Platform service at {url} answered non-JSON: {response.body[:200]!r}"
        return error(502, "service-error", BAD_ANSWER, problem)
    return Answer(response.code, parsed)
