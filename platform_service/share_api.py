"""Notebook shares at the platform service: the routes (the store is ``share_store.py``, the
rules ``shares.py``, the preview renderer ``previews.py``). Recipients read only what was
stored here, never the owner's server.
"""

from __future__ import annotations

import html
import json

from tornado import web
from tornado.log import app_log as log

from . import previews
from .base import APIError
from .periods import iso_utc
from .share_base import (
    HUB_BUSY,
    MAX_AUDIT,
    MAX_QUERY,
    MAX_SUGGESTIONS,
    ShareHandler,
    recipient_suggestions,
)
from .shares import (
    SHARE_ID,
    ShareError,
    as_json,
    check_create,
    check_update,
    file_name,
    may_copy,
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
            log.warning("Listing the hub's users for share suggestions failed: %s", e)
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
    (r"/api/shares/audit", AuditHandler),
    (r"/api/shares/([0-9a-f]{16})", OneShareHandler),
    (r"/api/shares/([0-9a-f]{16})/copy", CopyHandler),
    (r"/shares/([0-9a-f]{16})", SharePageHandler),
    (r"/shares/([0-9a-f]{16})/preview", PreviewHandler),
]
