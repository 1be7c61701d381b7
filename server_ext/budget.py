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
import time
from collections.abc import Callable

from jupyter_server.auth.decorator import authorized
from tornado import web

from . import service_client
from .handlers import MLFactoryAPIHandler
from .service_client import SERVICE_URL_ENV, TOKEN_ENV, Answer, Target

log = logging.getLogger(__name__)

__all__ = ["SERVICE_URL_ENV", "TOKEN_ENV", "Answer", "clear_cache", "fetch_budget", "me_url"]

TIMEOUT_S = service_client.TIMEOUT_S
CACHE_S = 20.0

WORDING = service_client.Wording(
    endpoint="budget",
    unreachable="your budgets cannot be shown",
    not_configured="budgets are not shown here",
)
UNREACHABLE = service_client.UNREACHABLE.format(consequence=WORDING.unreachable)

# Where the cache reads the time; monotonic so a clock change cannot pin a stale answer.
clock: Callable[[], float] = time.monotonic

_cache: dict[tuple[str, str], tuple[float, Answer]] = {}
_inflight: dict[tuple[str, str], asyncio.Future[Answer]] = {}


def clear_cache() -> None:
    _cache.clear()
    _inflight.clear()


def me_url(service_url: str) -> str:
    """The service's ``api/me`` URL from MLFACTORY_SERVICE_URL (see service_client.api_url)."""
    return service_client.api_url(service_url, "me")


async def _ask_service(url: str, token: str) -> Answer:
    answer = await service_client.call(url, token, WORDING, timeout_s=TIMEOUT_S)
    if not answer.ok:
        log.warning("Budget request failed: %s", answer.problem)
    return answer


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
        target = service_client.target_from_env()
        if isinstance(target, Target):
            answer = await fetch_budget(me_url(target.service_url), target.token)
        else:
            answer = service_client.not_configured(target, WORDING)
        self.set_status(answer.status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(answer.body))


# Patterns are relative: ExtensionApp prefixes them with the server's base_url.
default_handlers = [(r"/mlfactory/api/budget", BudgetHandler)]
