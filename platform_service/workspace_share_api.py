"""Workspace shares at the platform service: the only client allowed to grant, list and
revoke shares of a user's server at the hub, so the platform's sharing rules
(``sharing.users``, ``sharing.groups``) cannot be bypassed from inside a server.

Users and their servers' tokens hold no ``shares`` scope; this service's role does. The owner
is always the caller (the token's user), the server named in the path is one of theirs, and
every grant first passes ``refused_recipients``, the rule notebook shares follow.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import quote

from tornado import web
from tornado.httpclient import HTTPClientError
from tornado.log import app_log as log

from .base import APIError
from .share_base import HUB_BUSY, ShareHandler

# JupyterHub's own name rules are looser; these are what a share request may carry here.
_NAME = re.compile(r"[^/\x00-\x1f\x7f]{1,255}")
KINDS = ("user", "group")
ONE_RECIPIENT = 'Name one recipient: {"user": "<name>"} or {"group": "<name>"}.'
NOT_YOURS = (
    "Only the owner of a server can share it, with a token that may reach that server "
    "(the server's own token or your API token); this token may not reach {owner}/{server}."
)
NO_SERVER = "You have no server named '{server}'; start it once, then share it."
SERVICE_NOT_ALLOWED = (
    "The hub refused the platform service ({detail}): its role needs the 'shares' scope "
    "(mlfactory's hub config grants it); ask your hub admin."
)


# --- pure rules ---------------------------------------------------------------------------


def parse_recipient(body: Mapping[str, Any], owner: str) -> tuple[str, str]:
    """``{"user": name}`` or ``{"group": name}`` as ``(kind, name)``; ValueError saying what
    to send otherwise. Sharing with yourself is refused: you need no share to use your own
    server."""
    given = [k for k in KINDS if k in body]
    if len(given) != 1:
        raise ValueError(ONE_RECIPIENT)
    kind = given[0]
    name = body[kind]
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ValueError(f"{kind}: the name must be 1-255 characters without '/'.")
    if kind == "user" and name == owner:
        raise ValueError("user: this is your own server; you need no share to use it.")
    return kind, name


def may_manage(scopes: Iterable[str], owner: str, server: str, admin: bool = False) -> bool:
    """Whether a token with ``scopes`` speaks for ``owner``'s server ``server``: it holds
    ``access:servers`` covering that server (unfiltered, ``!user=owner`` or
    ``!server=owner/server``). A server's own token and its owner's API tokens do; a token
    the browser got for the service's dashboard does not, nor does a visitor's for the
    server shared with them (that names the owner's server, not the visitor's)."""
    if admin:
        return True
    wanted = {
        "access:servers",
        f"access:servers!user={owner}",
        f"access:servers!server={owner}/{server}",
    }
    return any(s in wanted for s in scopes if isinstance(s, str))


def grantees(items: Iterable[Mapping[str, Any]]) -> list[dict[str, str]]:
    """The hub's share models (``GET /hub/api/shares/{owner}/{server}``'s ``items``) as
    ``{"kind", "name", "created_at"}``, users first then groups, by name; malformed entries
    are skipped."""
    out: dict[tuple[str, str], str] = {}
    for item in items:
        kind = item.get("kind")
        who = item.get(kind) if kind in KINDS else None
        name = who.get("name") if isinstance(who, Mapping) else None
        if isinstance(name, str) and name:
            out[(kind, name)] = str(item.get("created_at") or "")
    order = sorted(out, key=lambda k: (KINDS.index(k[0]), k[1]))
    return [{"kind": kind, "name": name, "created_at": out[(kind, name)]} for kind, name in order]


# --- REST ---------------------------------------------------------------------------------


class WorkspaceSharesHandler(ShareHandler):
    """The caller's server ``server`` ("" for the default one): who it is shared with
    (GET), share it (POST ``{"user"|"group": name}``), revoke (DELETE ``?user=``/``?group=``).
    Every answer is the current list, ``{"grantees": [...]}``."""

    def target(self, server: str | None) -> tuple[str, str]:
        owner = self.model["name"]
        server = server or ""
        scopes = self.model.get("scopes") or ()
        if not may_manage(scopes, owner, server, admin=bool(self.model.get("admin"))):
            raise APIError(403, NOT_YOURS.format(owner=owner, server=server))
        return owner, server

    def hub_path(self, owner: str, server: str) -> str:
        return f"/shares/{quote(owner, safe='')}/{quote(server, safe='')}"

    async def ask_hub(self, method: str, owner: str, server: str, body: Any = None) -> Any:
        """One change at the hub; APIError a person can act on for whatever goes wrong."""
        hub = self.accountant.hub
        if hub is None:
            raise APIError(503, HUB_BUSY)
        try:
            return await hub.request(method, self.hub_path(owner, server), body)
        except HTTPClientError as e:
            raise self.hub_error(e, server) from None
        except OSError as e:
            log.warning("Workspace shares: the hub cannot be reached: %s", e)
            raise APIError(503, HUB_BUSY) from None

    def hub_error(self, e: HTTPClientError, server: str) -> APIError:
        detail = ""
        if e.response is not None and e.response.body:
            try:
                detail = str(json.loads(e.response.body).get("message") or "")
            except (ValueError, AttributeError):
                detail = ""
        log.warning("Workspace shares: the hub answered %s: %s", e.code, detail or e)
        if e.code == 599:
            return APIError(503, HUB_BUSY)
        if e.code == 404:
            return APIError(404, NO_SERVER.format(server=server))
        if e.code == 400:
            return APIError(400, f"The hub refused: {detail or 'bad request'}")
        if e.code in (401, 403):
            return APIError(503, SERVICE_NOT_ALLOWED.format(detail=detail or f"HTTP {e.code}"))
        return APIError(503, f"The hub failed ({e.code}); try again in a minute.")

    async def reply(self, owner: str, server: str, status: int = 200) -> None:
        hub = self.accountant.hub
        if hub is None:
            raise APIError(503, HUB_BUSY)
        try:
            items = [item async for item in hub.pages(self.hub_path(owner, server), {})]
        except HTTPClientError as e:
            raise self.hub_error(e, server) from None
        except OSError:
            raise APIError(503, HUB_BUSY) from None
        self.set_header("Cache-Control", "no-store")
        self.write_json({"grantees": grantees(items)}, status=status)

    def recipient(self, source: Mapping[str, Any]) -> tuple[str, str]:
        try:
            return parse_recipient(source, self.model["name"])
        except ValueError as e:
            raise APIError(400, str(e), next((k for k in KINDS if k in source), "user")) from None

    @web.authenticated
    async def get(self, server: str | None = None) -> None:
        owner, server = self.target(server)
        await self.reply(owner, server)

    @web.authenticated
    async def post(self, server: str | None = None) -> None:
        owner, server = self.target(server)
        kind, name = self.recipient(self.json_body(max_size=4096))
        # the platform's rules first (404 naming an unknown or hidden name, 403 for
        # ``same-group``); the hub is asked only for a recipient they allow
        if kind == "user":
            await self.check_names((name,), ())
        else:
            await self.check_names((), (name,))
        await self.ask_hub("POST", owner, server, {kind: name})
        log.info("Workspace share: %s/%s shared with %s %s", owner, server, kind, name)
        await self.reply(owner, server)

    @web.authenticated
    async def delete(self, server: str | None = None) -> None:
        owner, server = self.target(server)
        args = {k: self.get_argument(k) for k in KINDS if self.get_argument(k, None) is not None}
        kind, name = self.recipient(args)
        # PATCH without scopes revokes every scope of that one share (DELETE drops them all)
        await self.ask_hub("PATCH", owner, server, {kind: name})
        log.info("Workspace share: %s/%s revoked from %s %s", owner, server, kind, name)
        await self.reply(owner, server)


# Patterns are relative to the service's prefix; app.make_app prefixes them. The default
# server ("") has the bare path; a named server's name follows it.
default_handlers = [
    (r"/api/workspace-shares", WorkspaceSharesHandler),
    (r"/api/workspace-shares/([^/]+)", WorkspaceSharesHandler),
]
