"""The platform summary on the hub's home page, asked for by the hub itself.

``HomeSummary`` goes in ``c.JupyterHub.template_vars``: JupyterHub calls it with the page's
signed-in user, and ``home.html`` calls what it returns, which the hub's asynchronous Jinja
rendering awaits. It asks the platform service's ``/api/home`` for that user only, with the
shared service secret the spawner's budget gate uses, so no token is minted per visit (issue 21:
a token per visit filled the Token page) and a user can only ever see their own servers,
budgets and notices: the hub's own login decides whose they are.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiohttp import ClientError
from mlfactory.spawner.budget_gate import post_with_secret

from .home_view import UNAVAILABLE, HomeView, home_view

log = logging.getLogger("mlfactory.hub")


class HomeSummary:
    """``template_vars["mlfactory_home"]``: ``user`` → an async ``() -> HomeView`` (None when
    no one is signed in). The page's render waits at most ``timeout`` seconds for the service;
    an answer that does not come shows as "unavailable", never as an error page."""

    def __init__(
        self,
        url: str,
        secret: str,
        *,
        timeout: float = 3.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.url = url.rstrip("/")
        self.secret = secret
        self.timeout = timeout
        self.clock = clock

    def __call__(self, user: Any) -> Callable[[], Awaitable[HomeView]] | None:
        # JupyterHub calls this while building every page's namespace: do no I/O here, only
        # when the home page asks.
        if user is None or not getattr(user, "name", None):
            return None

        async def summary() -> HomeView:
            return await self.view(user.name, group_names(user))

        return summary

    async def answer(self, user: str, groups: list[str]) -> dict[str, Any] | None:
        """The service's ``/api/home`` answer for ``user``; None (logged) when it fails."""
        try:
            code, answer = await post_with_secret(
                f"{self.url}/api/home", self.secret, {"user": user, "groups": groups}, self.timeout
            )
            if code >= 400:
                raise ValueError(f"HTTP {code}")
            body = json.loads(answer)
        except (ClientError, OSError, ValueError) as e:
            log.warning("The home page of %s has no platform summary: %s", user, str(e) or repr(e))
            return None
        return body if isinstance(body, dict) else None

    async def view(self, user: str, groups: list[str]) -> HomeView:
        try:
            return home_view(await self.answer(user, groups), self.clock())
        except Exception:  # the home page must render whatever the service sent
            log.exception("Cannot show the platform summary of %s", user)
            return UNAVAILABLE


def group_names(user: Any) -> list[str]:
    """The hub's groups of ``user`` (a JupyterHub ``User``): the budgets that apply to them."""
    return sorted(g.name for g in getattr(user, "groups", None) or ())
