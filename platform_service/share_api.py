"""Notebook shares at the platform service: the routes (the store is ``share_store.py``, the
rules ``shares.py``, the preview renderer ``previews.py``). Recipients read only what was
stored here, never the owner's server.
"""

from __future__ import annotations

import asyncio
import html
import json
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any

from mlfactory.hub.platform_schema import Sharing
from tornado import web
from tornado.log import app_log as log

from . import previews
from .base import APIError, UserHandler
from .periods import iso_utc
from .share_store import NOT_FOUND, ShareStore, SnapshotMissing, shares_dir
from .shares import (
    SHARE_ID,
    Request,
    Share,
    ShareError,
    as_json,
    check_create,
    check_recipients,
    check_update,
    file_name,
    may_copy,
    may_read,
    refusal_status,
    refused_recipients,
)

HUB_BUSY = "The hub cannot be asked who exists; try again in a minute."
MAX_AUDIT = 1000


# --- whom the Share dialog offers ----------------------------------------------------------

MAX_SUGGESTIONS = 50
MAX_QUERY = 255
# Seconds the hub's list of users and groups is reused for the dialog's search-as-you-type.
# Suggestions only: creating a share asks the hub afresh (``check_recipients``), so a user
# removed meanwhile is refused by name, never shared with.
DIRECTORY_MAX_AGE = 30.0


def _by_name(name: str) -> tuple[str, str]:
    return name.casefold(), name


def recipient_suggestions(
    query: str,
    *,
    users: Iterable[str],
    groups: Mapping[str, Collection[str]],
    me: str,
    my_groups: Collection[str],
    is_admin: bool,
    group_policy: str,
    user_policy: str,
    limit: int,
) -> dict[str, Any]:
    """The users and groups ``me`` may share with whose names start with ``query`` (any case),
    alphabetically, at most ``limit`` of each; never ``me``. The rules of
    ``refused_recipients``: groups are the caller's own (every group for admins or ``groups:
    any``); users any hub user, or those sharing a group with the caller (``users:
    same-group``). Pure."""
    q = query.strip().casefold()
    mine = set(my_groups)
    if user_policy == "same-group" and not is_admin:
        allowed_users: Iterable[str] = {m for g in mine for m in groups.get(g, ())}
    else:
        allowed_users = users
    known = set(users)
    names = sorted(
        (u for u in allowed_users if u != me and u in known and u.casefold().startswith(q)),
        key=_by_name,
    )
    visible = groups if (is_admin or group_policy == "any") else [g for g in groups if g in mine]
    gnames = sorted((g for g in visible if g.casefold().startswith(q)), key=_by_name)
    return {
        "query": query,
        "users": names[:limit],
        "groups": gnames[:limit],
        "truncated": len(names) > limit or len(gnames) > limit,
    }


class Directory:
    """The hub's user names and groups (with members), fetched at most every ``max_age``
    seconds, one fetch at a time; the last good answer is kept while the hub is away."""

    def __init__(self, clock: Callable[[], float], max_age: float = DIRECTORY_MAX_AGE) -> None:
        self.clock = clock
        self.max_age = max_age
        self.users: list[str] = []
        self.groups: dict[str, list[str]] = {}
        self.fetched_at: float | None = None
        self._lock = asyncio.Lock()

    def fresh(self) -> bool:
        return self.fetched_at is not None and self.clock() - self.fetched_at < self.max_age

    async def load(self, hub: Any) -> tuple[list[str], dict[str, list[str]]]:
        async with self._lock:
            if not self.fresh():
                try:
                    users = [u["name"] async for u in hub.users()]
                    groups = {g["name"]: list(g.get("users") or ()) for g in await hub.groups()}
                except Exception as e:  # the hub restarting: the last answer, if any
                    if self.fetched_at is None:
                        raise
                    log.warning("Listing the hub's users for share suggestions failed: %s", e)
                else:
                    self.users, self.groups = users, groups
                    self.fetched_at = self.clock()
            return self.users, self.groups


# --- REST -------------------------------------------------------------------------------


class ShareHandler(UserHandler):
    """Base of the share routes: the store, the config and reading one share."""

    @property
    def sharing(self) -> Sharing:
        return self.accountant.config.sharing

    @property
    def shares(self) -> ShareStore:
        settings = self.application.settings
        store = settings.get("shares")
        if store is None:  # built on first use, next to the accountant's database
            store = settings["shares"] = ShareStore(
                self.accountant.store.engine,
                settings.get("shares_dir") or shares_dir(),
                self.accountant.clock,
            )
        return store

    @property
    def directory(self) -> Directory:
        settings = self.application.settings
        found = settings.get("share_directory")
        if found is None:
            found = settings["share_directory"] = Directory(self.accountant.clock)
        return found

    @staticmethod
    def fail(e: ShareError) -> APIError:
        return APIError(e.status, e.message, e.field)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SnapshotMissing):
            self.set_status(500)
            body = {
                "error": "This share's snapshot cannot be read; tell an admin (the log says why)."
            }
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))
            return
        super().write_error(status_code, **kwargs)

    async def readable(self, share_id: str) -> tuple[Share, list[str]]:
        """The share if the caller may read it, with the caller's groups; else 404, the same
        answer as for an id that never existed (revoked and expired shares included)."""
        if not SHARE_ID.fullmatch(share_id):
            raise APIError(404, NOT_FOUND)
        share = await self.shares.get(share_id)
        groups = await self.my_groups()
        if share is None or not may_read(share, self.model["name"], groups, self.now()):
            raise APIError(404, NOT_FOUND)
        return share, groups

    async def owned(self, share_id: str) -> Share:
        share, _ = await self.readable(share_id)
        if share.owner != self.model["name"]:
            raise APIError(403, "Only the owner of a share can change or revoke it.")
        return share

    def version_arg(self, share: Share) -> int:
        raw = self.get_argument("version", None)
        if raw is None:
            return share.version
        if not raw.isdigit() or not 1 <= int(raw) <= share.version:
            raise APIError(404, f"version: this share has versions 1 to {share.version}", "version")
        return int(raw)

    def max_body(self) -> int:
        # the notebook travels as JSON inside JSON: escapes may add to its size
        return 4 * self.sharing.max_notebook_bytes + 64 * 1024

    async def check_recipients(self, req: Request) -> None:
        """404 naming each recipient that does not exist or that the owner may not name (403
        when all that stands in the way is the ``same-group`` rule)."""
        if req.users is None:
            return
        await self.check_names(req.users, req.groups or ())

    async def check_names(self, users: tuple[str, ...], groups: tuple[str, ...]) -> None:
        """``check_recipients`` for plain names (notebook and workspace shares alike)."""
        hub = self.accountant.hub
        if hub is None:
            raise APIError(503, HUB_BUSY)
        try:
            found = await asyncio.gather(*(hub.user(u) for u in users))
            existing_groups = (
                {g["name"]: list(g.get("users") or ()) for g in await hub.groups()}
                if (groups or self.sharing.users == "same-group")
                else {}
            )
        except Exception as e:  # the hub restarting; never a half-checked share
            self.log.warning("Checking share recipients with the hub failed: %s", e)
            raise APIError(503, HUB_BUSY) from None
        problems = refused_recipients(
            users,
            groups,
            existing_users={u for u, model in zip(users, found, strict=True) if model},
            existing_groups=existing_groups,
            owner_groups=await self.my_groups(),
            owner_is_admin=bool(self.model.get("admin")),
            group_policy=self.sharing.groups,
            user_policy=self.sharing.users,
        )
        if problems:
            raise APIError(
                refusal_status(problems), " ".join(m for _, m in problems), problems[0][0]
            )


class SharesHandler(ShareHandler):
    @web.authenticated
    async def get(self) -> None:
        now = self.now()
        rows = await self.shares.mine(self.model["name"])
        self.write_json({"shares": [as_json(s, now, iso_utc, for_owner=True) for s in rows]})

    @web.authenticated
    async def post(self) -> None:
        body = self.json_body(max_size=self.max_body())
        me = self.model["name"]  # the owner is the token's; a name in the body is ignored
        try:
            req = check_create(
                body,
                owner=me,
                now=self.now(),
                max_bytes=self.sharing.max_notebook_bytes,
                max_recipients=self.sharing.max_recipients,
            )
            await self.check_recipients(req)
            share = await self.shares.create(me, req)
        except ShareError as e:
            raise self.fail(e) from None
        self.write_json({"share": as_json(share, self.now(), iso_utc, for_owner=True)}, status=201)


class RecipientsHandler(ShareHandler):
    """Search-as-you-type for the Share dialog: whom the caller may share with, by prefix."""

    @web.authenticated
    async def get(self) -> None:
        query = self.get_argument("q", "")
        if len(query) > MAX_QUERY:
            raise APIError(400, f"q: at most {MAX_QUERY} characters", "q")
        raw = self.get_argument("limit", "20")
        if not raw.isdigit() or not 1 <= int(raw) <= MAX_SUGGESTIONS:
            raise APIError(400, f"limit: 1 to {MAX_SUGGESTIONS}", "limit")
        hub = self.accountant.hub
        if hub is None:
            raise APIError(503, HUB_BUSY)
        try:
            users, groups = await self.directory.load(hub)
        except Exception as e:
            self.log.warning("Listing the hub's users for share suggestions failed: %s", e)
            raise APIError(503, HUB_BUSY) from None
        self.write_json(
            recipient_suggestions(
                query,
                users=users,
                groups=groups,
                me=self.model["name"],
                my_groups=await self.my_groups(),
                is_admin=bool(self.model.get("admin")),
                group_policy=self.sharing.groups,
                user_policy=self.sharing.users,
                limit=int(raw),
            )
        )


class RecipientsCheckHandler(ShareHandler):
    """Whether the caller may share with ``{"users": [...], "groups": [...]}`` under the
    platform's sharing rules, for workspace shares (granted by the owner's server through
    the hub, which knows no such rules): 200 ``{"users": [...], "groups": [...]}``, or the
    refusal notebook shares get, naming each recipient and the rule. Changes nothing."""

    @web.authenticated
    async def post(self) -> None:
        body = self.json_body(max_size=64 * 1024)
        try:
            users, groups = check_recipients(
                body.get("users"),
                body.get("groups"),
                owner=self.model["name"],
                max_recipients=self.sharing.max_recipients,
            )
        except ShareError as e:
            raise self.fail(e) from None
        await self.check_names(users, groups)
        self.write_json({"users": list(users), "groups": list(groups)})


class ReceivedHandler(ShareHandler):
    """ "Shared with me": live shares for the caller or their groups, not their own."""

    @web.authenticated
    async def get(self) -> None:
        now = self.now()
        rows = await self.shares.received(self.model["name"], await self.my_groups(), now)
        self.write_json({"shares": [as_json(s, now, iso_utc, for_owner=False) for s in rows]})


class OneShareHandler(ShareHandler):
    @web.authenticated
    async def get(self, share_id: str) -> None:
        share, _ = await self.readable(share_id)
        mine = share.owner == self.model["name"]
        out = as_json(share, self.now(), iso_utc, for_owner=mine)
        if mine:
            out["versions"] = await self.shares.versions(share.id)
        self.write_json({"share": out})

    @web.authenticated
    async def patch(self, share_id: str) -> None:
        share = await self.owned(share_id)
        body = self.json_body(max_size=self.max_body())
        try:
            req = check_update(
                body,
                share,
                now=self.now(),
                max_bytes=self.sharing.max_notebook_bytes,
                max_recipients=self.sharing.max_recipients,
            )
            await self.check_recipients(req)
            share = await self.shares.update(share, self.model["name"], req)
        except ShareError as e:
            raise self.fail(e) from None
        self.write_json({"share": as_json(share, self.now(), iso_utc, for_owner=True)})

    @web.authenticated
    async def delete(self, share_id: str) -> None:
        share = await self.owned(share_id)
        try:
            share = await self.shares.revoke(share, self.model["name"])
        except ShareError as e:
            raise self.fail(e) from None
        self.write_json({"share": as_json(share, self.now(), iso_utc, for_owner=True)})


class CopyHandler(ShareHandler):
    """The snapshot, for the recipient's server to write a copy; recorded as a copy.

    POST, not GET: it records the copy (and the server calls it with its token)."""

    @web.authenticated
    async def post(self, share_id: str) -> None:
        share, groups = await self.readable(share_id)
        me = self.model["name"]
        if not may_copy(share, me, groups, self.now()):
            raise APIError(
                403, f"{share.owner} shared this notebook to view only; ask them for a copy."
            )
        version = self.version_arg(share)
        try:
            text = await self.shares.snapshot(share, version)
        except ShareError as e:
            raise self.fail(e) from None
        await self.shares.record(share, version, me, "copy")
        head = json.dumps(
            {
                "share": as_json(share, self.now(), iso_utc, for_owner=me == share.owner),
                "version": version,
            }
        )
        # the snapshot is JSON already: spliced in rather than parsed and written again
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(
            head[:-1] + ', "path": ' + json.dumps(share.path) + ', "notebook": ' + text + "}"
        )


class AuditHandler(ShareHandler):
    @web.authenticated
    async def get(self) -> None:
        if not self.model.get("admin"):
            raise APIError(403, "Only hub admins can read the sharing audit.")
        t0, t1, d0, d1 = self.date_range()
        share_id = self.get_argument("share", None)
        if share_id is not None and not SHARE_ID.fullmatch(share_id):
            raise APIError(400, "share: a share id (16 hex digits)", "share")
        actor = self.get_argument("user", None)
        try:
            limit = int(self.get_argument("limit", "200"))
        except ValueError:
            limit = 0
        if not 1 <= limit <= MAX_AUDIT:
            raise APIError(400, f"limit: 1 to {MAX_AUDIT}", "limit")
        events = await self.shares.audit(t0, t1, share_id, actor, limit)
        self.write_json({"from": d0, "to": d1, "events": events})


# --- pages --------------------------------------------------------------------------------


class PreviewHandler(ShareHandler):
    """The rendered notebook, under the sandbox CSP (the document that holds the outputs)."""

    login_redirect = True

    @web.authenticated
    async def get(self, share_id: str) -> None:
        share, _ = await self.readable(share_id)
        version = self.version_arg(share)
        try:
            page = await self.shares.preview(share, version)
        except ShareError as e:
            raise self.fail(e) from None
        await self.shares.record(share, version, self.model["name"], "open")
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", previews.PREVIEW_CSP)
        for k, v in previews.SECURITY_HEADERS.items():
            self.set_header(k, v)
        self.finish(page)


PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>body{{margin:0;font-family:sans-serif}}
header{{padding:.6em 1em;border-bottom:1px solid #ccc}}header p{{margin:.2em 0}}
iframe{{border:0;width:100%;height:calc(100vh - 6em)}}</style></head>
<body><header><p><strong>{name}</strong>, version {version}, shared by {owner} on {date}</p>
{message}</header>
<iframe src="{src}" sandbox="allow-scripts" title="{name}"></iframe></body></html>
"""


class SharePageHandler(ShareHandler):
    """The share's link (no token in it): who shared what, the message, and the preview
    framed below. Everything from users is escaped; the page itself runs no script."""

    login_redirect = True

    @web.authenticated
    async def get(self, share_id: str) -> None:
        share, _ = await self.readable(share_id)
        version = self.version_arg(share)
        e = html.escape
        name = file_name(share.path)
        prefix = self.settings.get("service_prefix", "/services/mlfactory/").rstrip("/")
        page = PAGE.format(
            title=e(f"{name} — shared by {share.owner}"),
            name=e(name),
            owner=e(share.owner),
            version=version,
            date=e((iso_utc(share.updated_at) or "")[:10]),
            message=f"<p>{e(share.message)}</p>" if share.message else "",
            src=e(f"{prefix}/shares/{share.id}/preview?version={version}"),
        )
        self.set_header("Content-Type", "text/html; charset=utf-8")
        self.set_header("Content-Security-Policy", previews.PAGE_CSP)
        for k, v in previews.SECURITY_HEADERS.items():
            self.set_header(k, v)
        self.finish(page)


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/api/shares", SharesHandler),
    (r"/api/shares/received", ReceivedHandler),
    (r"/api/shares/recipients", RecipientsHandler),
    (r"/api/shares/recipients/check", RecipientsCheckHandler),
    (r"/api/shares/audit", AuditHandler),
    (r"/api/shares/([0-9a-f]{16})", OneShareHandler),
    (r"/api/shares/([0-9a-f]{16})/copy", CopyHandler),
    (r"/shares/([0-9a-f]{16})", SharePageHandler),
    (r"/shares/([0-9a-f]{16})/preview", PreviewHandler),
]
