"""Workspace shares: the owner grants other hub users or groups access to this server through
JupyterHub's shares API, and a revocation - made here, on the hub's pages, through its API or
by an admin - cuts the visitor off within seconds.

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
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.websocket import WebSocketHandler

from .grantees import Grantee, grantees_from_hub, parse_grant, stale_cache_keys, still_allowed
from .grantees import to_cut_off as _to_cut_off
from .handlers import MLFactoryAPIHandler
from .workspace_policy import refusal as policy_refusal

log = logging.getLogger(__name__)

SETTINGS_KEY = "mlfactory_doorkeeper"
CHECK_INTERVAL_S = 2.0  # + one hub round trip: a revocation bites within ~3 s
HUB_TIMEOUT_S = 10.0
# RFC 6455 "policy violation": the client is told why, and JupyterLab's reconnect then meets
# the hub's refusal rather than a cached welcome.
CLOSE_CODE = 1008
CLOSE_REASON = "Your access to this server was revoked."

WARNING = (
    "People you share this workspace with can run code as you, see all your files and use "
    "your budget."
)
NEEDS_SCOPES = (
    "The hub does not let this server manage its shares ({detail}). Workspace shares need "
    "the server's token to hold 'shares!server', 'read:users:name' and 'read:groups:name' "
    "(mlfactory's hub config grants them to every user); ask your hub admin."
)
UNREACHABLE = "The hub cannot be reached right now, so shares cannot be {doing}. Try again soon."
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


# --- the hub's shares API -------------------------------------------------------------------


class HubError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _hub_message(e: HTTPClientError) -> str:
    try:
        return str(json.loads(e.response.body or b"{}").get("message") or "")  # type: ignore[union-attr]
    except (ValueError, AttributeError):
        return ""


async def hub_call(api_url: str, token: str, path: str, method: str = "GET", body: Any = None):
    """One request to the hub's REST API with this server's token; HubError with a message a
    person can act on for anything that goes wrong."""
    request = HTTPRequest(
        api_url.rstrip("/") + path,
        method=method,
        headers={"Authorization": f"token {token}", "Accept": "application/json"},
        body=json.dumps(body) if body is not None else None,
        connect_timeout=HUB_TIMEOUT_S,
        request_timeout=HUB_TIMEOUT_S,
        follow_redirects=False,
    )
    doing = "listed" if method == "GET" else "changed"
    try:
        response = await AsyncHTTPClient().fetch(request)
    except HTTPClientError as e:
        if e.code == 599:
            raise HubError(503, UNREACHABLE.format(doing=doing)) from None
        detail = _hub_message(e) or f"HTTP {e.code}"
        log.warning("Hub %s %s answered %s: %s", method, path, e.code, detail)
        if e.code in (401, 403):
            raise HubError(403, NEEDS_SCOPES.format(detail=detail)) from None
        if e.code == 400:
            raise HubError(400, f"The hub refused: {detail}") from None
        if e.code == 404:
            raise HubError(404, "The hub does not know this server; is it still running?") from None
        raise HubError(502, f"The hub failed ({e.code}): {detail}. Try again soon.") from None
    except OSError:
        raise HubError(503, UNREACHABLE.format(doing=doing)) from None
    return json.loads(response.body) if response.body else {}


class HubShares:
    """This server's shares at the hub: list, grant, revoke."""

    def __init__(self, api_url: str, token: str, owner: str, server_name: str) -> None:
        self.api_url, self.token = api_url, token
        self.path = f"/shares/{quote(owner, safe='')}/{quote(server_name, safe='')}"

    @classmethod
    def from_env(cls, owner: str, environ: Mapping[str, str] = os.environ) -> HubShares | None:
        api_url = environ.get("JUPYTERHUB_API_URL", "")
        token = environ.get("JUPYTERHUB_API_TOKEN", "")
        if not (api_url and token and owner):
            return None
        return cls(api_url, token, owner, environ.get("JUPYTERHUB_SERVER_NAME", ""))

    async def list(self) -> list[Grantee]:
        items: list[dict[str, Any]] = []
        offset = 0
        while True:  # the hub pages its share list; 200 is its default page
            page = await hub_call(self.api_url, self.token, f"{self.path}?offset={offset}")
            batch = page.get("items", []) if isinstance(page, dict) else []
            items += batch
            nxt = (page.get("_pagination") or {}).get("next") if isinstance(page, dict) else None
            if not batch or not nxt:
                return grantees_from_hub(items)
            offset = int(nxt.get("offset", offset + len(batch)))

    async def grant(self, who: Grantee) -> None:
        await hub_call(self.api_url, self.token, self.path, "POST", {who.kind: who.name})

    async def revoke(self, who: Grantee) -> None:
        # PATCH without scopes revokes every scope of that share (DELETE would drop them all)
        await hub_call(self.api_url, self.token, self.path, "PATCH", {who.kind: who.name})


# --- REST -----------------------------------------------------------------------------------


class WorkspaceSharesHandler(MLFactoryAPIHandler):
    """Owner only: who this server is shared with; share it; revoke a share."""

    auth_resource = "mlfactory:workspace-shares"

    def hub(self) -> HubShares:
        hub = HubShares.from_env(self.mlfactory["owner"] or "")
        if hub is None:
            raise web.HTTPError(409, NOT_UNDER_HUB)
        return hub

    async def reply(self, hub: HubShares) -> None:
        try:
            grantees = await hub.list()
        except HubError as e:
            raise web.HTTPError(e.status, "%s", e.message) from None
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

    async def apply_policy(self, who: Grantee) -> None:
        """The platform's sharing rules (``sharing.groups``, ``sharing.users``), checked by
        the service before the hub is asked: a refusal names the recipient and the rule."""
        refused = await policy_refusal(who)
        if refused is not None:
            log.warning(
                "Workspace share with %s %s refused: %s", who.kind, who.name, refused.problem
            )
            raise web.HTTPError(refused.status, "%s", refused.body.get("message", ""))

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.require_owner()
        await self.reply(self.hub())

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Share with ``{"user": name}`` or ``{"group": name}``."""
        self.require_owner()
        hub = self.hub()
        who = self.grantee(self.body())
        await self.apply_policy(who)
        try:
            await hub.grant(who)
        except HubError as e:
            raise web.HTTPError(e.status, "%s", e.message) from None
        await self.reply(hub)

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        """Revoke ``?user=name`` or ``?group=name``; their websockets here close at once."""
        self.require_owner()
        hub = self.hub()
        args = {
            k: self.get_query_argument(k) for k in ("user", "group") if self.get_argument(k, None)
        }
        who = self.grantee(args)
        try:
            await hub.revoke(who)
        except HubError as e:
            raise web.HTTPError(e.status, "%s", e.message) from None
        keeper: Doorkeeper | None = self.settings.get(SETTINGS_KEY)
        if keeper is not None:
            await keeper.check_now()
        await self.reply(hub)


default_handlers = [(r"/mlfactory/workspace-shares", WorkspaceSharesHandler)]
