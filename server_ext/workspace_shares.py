"""Workspace shares: the owner grants other hub users or groups access to this server through
the platform service (the only holder of JupyterHub's ``shares`` scope, so the platform's
sharing rules cannot be bypassed from a notebook), and a revocation - made here, on the hub's
pages, through its API or by an admin - cuts the visitor off within seconds.

A share lets the recipient run code as the owner. The hub decides who may reach the server,
but two things outlive its decision: websockets already open (kernels, terminals, events,
jupyter-collaboration's document and awareness rooms) and HubAuth's short cache of its
answers. The ``Doorkeeper`` keeps every websocket a visitor opens and, every
``CHECK_INTERVAL_S`` while any is open, asks the hub afresh about each visitor's token;
whoever the hub no longer lets in loses every websocket and every cached answer. The
decisions are in ``grantees.py``.
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import os
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any
from urllib.parse import quote

from jupyter_server.auth.decorator import authorized
from tornado import web
from tornado.websocket import WebSocketHandler

from . import service_client
from .grantees import Grantee, parse_grant, stale_cache_keys, still_allowed
from .grantees import to_cut_off as _to_cut_off
from .handlers import MLFactoryAPIHandler

log = logging.getLogger(__name__)

SETTINGS_KEY = "mlfactory_doorkeeper"
CHECK_INTERVAL_S = 2.0  # + one hub round trip: a revocation bites within ~3 s
# RFC 6455 "policy violation": the client is told why, and JupyterLab's reconnect then meets
# the hub's refusal rather than a cached welcome.
CLOSE_CODE = 1008
CLOSE_REASON = "Your access to this server was revoked."

WARNING = (
    "People you share this workspace with can run code as you, see all your files and use "
    "your budget."
)
NOT_UNDER_HUB = "This server was not started by JupyterHub, so it cannot be shared as a workspace."

TokenCheck = Callable[[str], Awaitable[Mapping[str, Any] | None]]


# --- closing the door -----------------------------------------------------------------------


class Doorkeeper:
    """Tracks visitors' websockets on this server and cuts off those the hub no longer admits.

    ``check_token`` asks the hub about a token without HubAuth's cache; ``cache`` is HubAuth's
    cache of those answers (dropped for whoever is cut off).
    """

    def __init__(
        self,
        owner: str | None,
        check_token: TokenCheck | None,
        access_scopes: frozenset[str],
        cache: Any = None,
        interval_s: float = CHECK_INTERVAL_S,
    ) -> None:
        self.owner = owner
        self.check_token = check_token
        self.access_scopes = access_scopes
        self.cache = cache
        self.interval_s = interval_s
        # user -> {websocket handler: the token it authenticated with}; entries leave with
        # their handler, so a closed socket needs no bookkeeping
        self._sockets: dict[str, weakref.WeakKeyDictionary[Any, str]] = {}
        self._task: asyncio.Task | None = None

    @property
    def active(self) -> bool:
        return bool(self.owner) and self.check_token is not None

    def install(self, identity_provider: Any, token_of: Callable[[Any], str | None]) -> None:
        """Wrap ``identity_provider.get_user`` so every websocket that authenticates - kernel
        channels, terminals, events, any extension's - is tracked under its user. jupyter_server
        asks the identity provider for each request, so this is the one place they all pass."""
        original = identity_provider.get_user

        async def get_user(handler: Any) -> Any:
            user = original(handler)
            if inspect.isawaitable(user):
                user = await user
            if user is not None and isinstance(handler, WebSocketHandler):
                self.track(handler, user.username, token_of(handler))
            return user

        identity_provider.get_user = get_user

    def track(self, handler: Any, user: str, token: str | None) -> None:
        if not self.active or user == self.owner:
            return
        if not token:  # nothing to re-check with: the hub never let it in through a token
            return
        self._sockets.setdefault(user, weakref.WeakKeyDictionary())[handler] = token
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._watch())

    def visitors(self) -> dict[str, list[tuple[Any, str]]]:
        """Each visitor's open websockets, with the token each came with."""
        out = {}
        for user, sockets in list(self._sockets.items()):
            alive = [(h, t) for h, t in list(sockets.items()) if h.ws_connection is not None]
            if alive:
                out[user] = alive
            elif not sockets:
                del self._sockets[user]
        return out

    async def check_now(self) -> set[str]:
        """Ask the hub about every visitor now; cut off those it refuses. Returns who was cut."""
        if not self.active:
            return set()
        verdicts: dict[str, bool] = {}
        for user, sockets in self.visitors().items():
            for token in {t for _, t in sockets}:
                try:
                    model = await self.check_token(token)  # type: ignore[misc]
                except Exception as e:  # hub down: keep what is open, try again next turn
                    log.warning("Could not re-check %s's access with the hub: %s", user, e)
                    continue
                if model is not None and model.get("name") != user:
                    model = None  # a token that now names someone else is not this visitor's
                verdicts[user] = verdicts.get(user, True) and still_allowed(
                    model, self.access_scopes
                )
        users = _to_cut_off(verdicts, self.owner)
        self.cut_off(users)
        return users

    def cut_off(self, users: set[str]) -> None:
        """Close every websocket of ``users`` here and forget the hub's cached word on them."""
        for user in sorted(users):
            sockets = self._sockets.pop(user, {})
            for handler in list(sockets.keys()):
                if handler.ws_connection is not None:
                    handler.close(CLOSE_CODE, CLOSE_REASON)
            log.info("Closed %d websocket(s) of %s: no longer allowed here.", len(sockets), user)
        if self.cache is not None and users:
            # HubAuth's _ExpiringDict keeps its entries in ``.values`` (a dict, not a method)
            entries = getattr(self.cache, "values", None)
            entries = entries if isinstance(entries, Mapping) else self.cache
            for key in stale_cache_keys(entries, users):
                self.cache.pop(key, None)

    async def _watch(self) -> None:
        while self.visitors():
            await asyncio.sleep(self.interval_s)
            await self.check_now()

    def stop(self) -> asyncio.Future | None:
        if self._task is not None and not self._task.done():
            self._task.cancel()
            return self._task
        return None


def setup(app: Any) -> None:
    """Build the doorkeeper for ``app``'s server and hook it into its identity provider."""
    serverapp = app.serverapp
    hub_auth = getattr(serverapp.identity_provider, "hub_auth", None)
    if hub_auth is None or not app.owner:
        keeper = Doorkeeper(app.owner, None, frozenset())
    else:

        async def check_token(token: str) -> Mapping[str, Any] | None:
            return await hub_auth.user_for_token(token, use_cache=False, sync=False)

        keeper = Doorkeeper(
            app.owner, check_token, frozenset(hub_auth.access_scopes), hub_auth.cache
        )
        keeper.install(serverapp.identity_provider, lambda h: hub_auth.get_token(h))
    app.settings[SETTINGS_KEY] = keeper


# --- the platform service's workspace-shares API ----------------------------------------


SERVICE_PATH = "workspace-shares"
SERVICE_TIMEOUT_S = 20.0  # the service asks the hub twice (rules, then the share)
WORDING = service_client.Wording(
    endpoint="workspace-shares",
    unreachable="this workspace's shares cannot be listed or changed",
    not_configured="this workspace cannot be shared (the platform service grants shares)",
)
# The service's refusals, passed on in its words: a bad name (400), the same-group rule or
# a token that may not speak for this server (403), a user or group that does not exist or
# that the owner may not name, or an unknown server (404), the hub unreachable (503).
REFUSALS = frozenset({400, 403, 404, 503})


class ServiceError(Exception):
    def __init__(self, answer: service_client.Answer) -> None:
        super().__init__(answer.body.get("message", ""))
        self.status = answer.status
        self.message = str(answer.body.get("message", ""))
        self.problem = answer.problem


class ServiceShares:
    """This server's shares, through the platform service: the hub lets only the service
    grant and revoke, after the platform's sharing rules (users and servers hold no
    ``shares`` scope, so nothing run in a server can bypass those rules)."""

    def __init__(self, target: service_client.Target, server_name: str) -> None:
        self.target = target
        self.path = SERVICE_PATH + (f"/{quote(server_name, safe='')}" if server_name else "")

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ServiceShares | None:
        target = service_client.target_from_env(environ)
        if not isinstance(target, service_client.Target):
            return None
        return cls(target, environ.get("JUPYTERHUB_SERVER_NAME", ""))

    async def _call(
        self, method: str = "GET", query: Mapping[str, str] | None = None, body: Any = None
    ) -> list[Grantee]:
        answer = await service_client.call(
            self.target.url(self.path, query),
            self.target.token,
            WORDING,
            method=method,
            body=body,
            timeout_s=SERVICE_TIMEOUT_S,
            passthrough=REFUSALS,
        )
        if not answer.ok:
            raise ServiceError(answer)
        items = answer.body.get("grantees")
        return [
            Grantee(g["kind"], g["name"], str(g.get("created_at") or ""))
            for g in items if isinstance(g, dict) and g.get("kind") in ("user", "group")
            and isinstance(g.get("name"), str)
        ] if isinstance(items, list) else []  # fmt: skip

    async def list(self) -> list[Grantee]:
        return await self._call()

    async def grant(self, who: Grantee) -> list[Grantee]:
        return await self._call("POST", body={who.kind: who.name})

    async def revoke(self, who: Grantee) -> list[Grantee]:
        return await self._call("DELETE", query={who.kind: who.name})


# --- REST -----------------------------------------------------------------------------------


class WorkspaceSharesHandler(MLFactoryAPIHandler):
    """Owner only: who this server is shared with; share it; revoke a share."""

    auth_resource = "mlfactory:workspace-shares"

    def shares(self) -> ServiceShares:
        if not os.environ.get("JUPYTERHUB_API_URL"):
            raise web.HTTPError(409, NOT_UNDER_HUB)
        found = ServiceShares.from_env()
        if found is None:
            var = service_client.target_from_env()
            answer = service_client.not_configured(str(var), WORDING)
            raise web.HTTPError(answer.status, "%s", answer.body["message"])
        return found

    def reply(self, grantees: list[Grantee]) -> None:
        self.set_header("Cache-Control", "no-store")
        self.finish(
            json.dumps(
                {
                    "grantees": [g.as_json() for g in grantees],
                    # a shared server is reached at its owner's own URL
                    "url": self.base_url.rstrip("/") + "/lab",
                    "warning": WARNING,
                }
            )
        )

    def grantee(self, source: Mapping[str, Any]) -> Grantee:
        try:
            return parse_grant(source, self.mlfactory["owner"] or "")
        except ValueError as e:
            raise web.HTTPError(400, "%s", str(e)) from None

    @staticmethod
    def fail(e: ServiceError, doing: str) -> web.HTTPError:
        log.warning("Workspace shares: %s failed: %s", doing, e.problem or e.message)
        return web.HTTPError(e.status, "%s", e.message)

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.require_owner()
        try:
            self.reply(await self.shares().list())
        except ServiceError as e:
            raise self.fail(e, "listing") from None

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Share with ``{"user": name}`` or ``{"group": name}``; the service applies the
        platform's sharing rules (a refusal names the recipient and the rule)."""
        self.require_owner()
        who = self.grantee(self.body())
        shares = self.shares()
        try:
            self.reply(await shares.grant(who))
        except ServiceError as e:
            raise self.fail(e, f"sharing with {who.kind} {who.name}") from None

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        """Revoke ``?user=name`` or ``?group=name``; their websockets here close at once."""
        self.require_owner()
        args = {
            k: self.get_query_argument(k) for k in ("user", "group") if self.get_argument(k, None)
        }
        who = self.grantee(args)
        shares = self.shares()
        try:
            grantees = await shares.revoke(who)
        except ServiceError as e:
            raise self.fail(e, f"revoking {who.kind} {who.name}") from None
        keeper: Doorkeeper | None = self.settings.get(SETTINGS_KEY)
        if keeper is not None:
            await keeper.check_now()
        self.reply(grantees)


default_handlers = [(r"/mlfactory/workspace-shares", WorkspaceSharesHandler)]
