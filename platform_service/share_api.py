"""Notebook shares at the platform service: the store (rows in the database, snapshots as
files) and the routes. Recipients read only what was stored here, never the owner's server.

Snapshots are files, ``<shares dir>/<id>/v<version>.ipynb``, written once (temporary file,
then rename) before their row commits, with the row holding size and SHA-256; the rendered
preview sits next to them as ``v<version>.html``. Files, not BLOBs: a 5 MB notebook per
version would bloat the ledger's database, its WAL and its backups, and these are read whole
and never queried. The rules are in ``shares.py``; the preview renderer in ``previews.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import html
import json
import os
import secrets
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import nbformat
from mlfactory.hub.platform_config import hub_state_dir
from mlfactory.hub.platform_schema import Sharing
from sqlalchemy import and_, delete, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from tornado import web
from tornado.log import app_log as log

from . import previews
from .base import APIError, UserHandler
from .db import NotebookShare, ShareEvent, ShareRecipient, ShareVersion
from .periods import iso_utc
from .shares import (
    SHARE_ID,
    Request,
    Share,
    ShareError,
    as_json,
    check_create,
    check_update,
    file_name,
    may_copy,
    may_read,
    refused_recipients,
)

NOT_FOUND = "No share has this id, or it was revoked or has expired."
HUB_BUSY = "The hub cannot be asked who exists; try again in a minute."
MAX_AUDIT = 1000
RENDERS_AT_ONCE = 2  # nbconvert is CPU-bound; more at once only slows each


def shares_dir() -> Path:
    """Where snapshots live by default: the hub's private part of the data dir."""
    return hub_state_dir() / "shares"


class SnapshotMissing(RuntimeError):
    """A version's file is gone or does not match its digest (disk trouble, not the user)."""


def _write_once(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _validate(text: str) -> None:
    try:
        nbformat.validate(nbformat.reads(text, as_version=4))
    except (nbformat.ValidationError, ValueError, KeyError, TypeError) as e:
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ShareError(400, f"notebook: not a valid notebook ({first})", "notebook") from None


_SHARE_COLUMNS = (
    "id", "owner", "path", "mode", "message", "created_at", "updated_at", "version",
    "expires_at", "revoked_at",
)  # fmt: skip


def _share(row: NotebookShare, recipients: Iterable[ShareRecipient] = ()) -> Share:
    rs = list(recipients)
    return Share(
        id=row.id,
        owner=row.owner,
        path=row.path,
        mode=row.mode,
        message=row.message,
        created_at=row.created_at,
        updated_at=row.updated_at,
        version=row.version,
        users=tuple(sorted(r.name for r in rs if r.kind == "user")),
        groups=tuple(sorted(r.name for r in rs if r.kind == "group")),
        expires_at=row.expires_at,
        revoked_at=row.revoked_at,
    )


class ShareStore:
    """Shares, their snapshots and the audit. Blocking work runs in a worker thread."""

    def __init__(self, engine: Engine, root: Path, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.root = Path(root)
        self.clock = clock
        self._render_slots = asyncio.Semaphore(RENDERS_AT_ONCE)
        self._rendering: dict[tuple[str, int], asyncio.Lock] = {}

    def snapshot_path(self, share_id: str, version: int) -> Path:
        return self.root / share_id / f"v{version}.ipynb"

    def preview_path(self, share_id: str, version: int) -> Path:
        return self.root / share_id / f"v{version}.html"

    # -- changes -------------------------------------------------------------------------

    async def create(self, owner: str, req: Request) -> Share:
        return await asyncio.to_thread(self._create, owner, req)

    def _create(self, owner: str, req: Request) -> Share:
        assert req.notebook is not None and req.path and req.mode
        _validate(req.notebook)
        share_id, now = secrets.token_hex(8), self.clock()
        data = req.notebook.encode("utf-8")
        _write_once(self.snapshot_path(share_id, 1), data)
        with Session(self.engine) as db, db.begin():
            row = NotebookShare(
                id=share_id,
                owner=owner,
                path=req.path,
                mode=req.mode,
                message=req.message or "",
                version=1,
                created_at=now,
                updated_at=now,
                expires_at=req.expires_at,
            )
            db.add(row)
            db.flush()
            self._add_version(db, share_id, 1, data, now)
            recipients = self._set_recipients(db, share_id, req)
            self._event(db, share_id, 1, owner, "share", now, self._detail(req))
            return _share(row, recipients)

    async def update(self, share: Share, actor: str, req: Request) -> Share:
        return await asyncio.to_thread(self._update, share.id, actor, req)

    def _update(self, share_id: str, actor: str, req: Request) -> Share:
        if req.notebook is not None:
            _validate(req.notebook)
        now = self.clock()
        with Session(self.engine) as db, db.begin():
            row = db.get(NotebookShare, share_id, with_for_update=True)
            if row is None:
                raise ShareError(404, NOT_FOUND)
            if row.revoked_at is not None:
                raise ShareError(409, "This share was revoked; share the notebook again.")
            if req.notebook is not None:
                version = row.version + 1
                data = req.notebook.encode("utf-8")
                _write_once(self.snapshot_path(share_id, version), data)
                self._add_version(db, share_id, version, data, now)
                row.version = version
            for key in ("path", "mode", "message"):
                if getattr(req, key) is not None:
                    setattr(row, key, getattr(req, key))
            if req.expiry_given:
                row.expires_at = req.expires_at
            row.updated_at = now
            if req.users is not None:
                db.execute(delete(ShareRecipient).where(ShareRecipient.share_id == share_id))
                self._set_recipients(db, share_id, req)
            self._event(db, share_id, row.version, actor, "update", now, self._detail(req))
            db.flush()
            return _share(row, self._recipients(db, [share_id]).get(share_id, []))

    async def revoke(self, share: Share, actor: str) -> Share:
        def work() -> Share:
            now = self.clock()
            with Session(self.engine) as db, db.begin():
                row = db.get(NotebookShare, share.id, with_for_update=True)
                if row is None:
                    raise ShareError(404, NOT_FOUND)
                if row.revoked_at is None:  # revoking twice changes nothing
                    row.revoked_at = now
                    self._event(db, row.id, row.version, actor, "revoke", now, {})
                return _share(row, self._recipients(db, [row.id]).get(row.id, []))

        return await asyncio.to_thread(work)

    async def record(
        self, share: Share, version: int, actor: str, action: str, detail: dict | None = None
    ) -> None:
        def work() -> None:
            with Session(self.engine) as db, db.begin():
                self._event(db, share.id, version, actor, action, self.clock(), detail or {})

        await asyncio.to_thread(work)

    @staticmethod
    def _add_version(db: Session, share_id: str, version: int, data: bytes, now: float) -> None:
        digest = hashlib.sha256(data).hexdigest()
        db.add(
            ShareVersion(
                share_id=share_id, version=version, created_at=now, size=len(data), sha256=digest
            )
        )

    @staticmethod
    def _set_recipients(db: Session, share_id: str, req: Request) -> list[ShareRecipient]:
        rows = [ShareRecipient(share_id=share_id, kind="user", name=u) for u in req.users or ()]
        rows += [ShareRecipient(share_id=share_id, kind="group", name=g) for g in req.groups or ()]
        db.add_all(rows)
        return rows

    @staticmethod
    def _event(
        db: Session, share_id: str, version: int, actor: str, action: str, at: float, detail: dict
    ) -> None:
        db.add(
            ShareEvent(
                share_id=share_id, version=version, actor=actor, action=action, at=at, detail=detail
            )
        )

    @staticmethod
    def _detail(req: Request) -> dict[str, Any]:
        """What a change set, for the audit (never the notebook itself)."""
        out: dict[str, Any] = {}
        for key in ("path", "mode"):
            if getattr(req, key) is not None:
                out[key] = getattr(req, key)
        if req.users is not None:
            out["users"], out["groups"] = list(req.users), list(req.groups or ())
        if req.expiry_given:
            out["expires_at"] = iso_utc(req.expires_at)
        if req.notebook is not None:
            out["new_version"] = True
        return out

    # -- reading -------------------------------------------------------------------------

    @staticmethod
    def _recipients(db: Session, ids: list[str]) -> dict[str, list[ShareRecipient]]:
        out: dict[str, list[ShareRecipient]] = {}
        if not ids:
            return out
        for r in db.scalars(select(ShareRecipient).where(ShareRecipient.share_id.in_(ids))):
            out.setdefault(r.share_id, []).append(r)
        return out

    async def get(self, share_id: str) -> Share | None:
        def read() -> Share | None:
            with Session(self.engine) as db:
                row = db.get(NotebookShare, share_id)
                if row is None:
                    return None
                return _share(row, self._recipients(db, [share_id]).get(share_id, []))

        return await asyncio.to_thread(read)

    async def versions(self, share_id: str) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            q = (
                select(ShareVersion)
                .where(ShareVersion.share_id == share_id)
                .order_by(ShareVersion.version)
            )
            with Session(self.engine) as db:
                return [
                    {"version": v.version, "created_at": iso_utc(v.created_at), "size": v.size}
                    for v in db.scalars(q)
                ]

        return await asyncio.to_thread(read)

    async def mine(self, owner: str) -> list[Share]:
        """The owner's shares, revoked and expired ones too, newest change first."""

        def read() -> list[Share]:
            q = (
                select(NotebookShare)
                .where(NotebookShare.owner == owner)
                .order_by(NotebookShare.updated_at.desc(), NotebookShare.id)
            )
            with Session(self.engine) as db:
                rows = list(db.scalars(q))
                rs = self._recipients(db, [r.id for r in rows])
                return [_share(r, rs.get(r.id, [])) for r in rows]

        return await asyncio.to_thread(read)

    async def received(self, user: str, groups: Iterable[str], now: float) -> list[Share]:
        """Live shares for ``user`` or one of ``groups``, newest change first; one query."""
        names = sorted(set(groups))

        def read() -> list[Share]:
            who = and_(ShareRecipient.kind == "user", ShareRecipient.name == user)
            if names:
                who = or_(who, and_(ShareRecipient.kind == "group", ShareRecipient.name.in_(names)))
            ids = select(ShareRecipient.share_id).where(who)
            q = (
                select(*(getattr(NotebookShare, f) for f in _SHARE_COLUMNS))
                .where(NotebookShare.id.in_(ids))
                .where(NotebookShare.owner != user)
                .where(NotebookShare.revoked_at.is_(None))
                .where(or_(NotebookShare.expires_at.is_(None), NotebookShare.expires_at > now))
                .order_by(NotebookShare.updated_at.desc(), NotebookShare.id)
            )
            with self.engine.connect() as conn:  # plain rows: ORM objects cost 3x here
                return [Share(**row._mapping) for row in conn.execute(q)]

        return await asyncio.to_thread(read)

    async def audit(
        self, t0: float, t1: float, share_id: str | None, actor: str | None, limit: int
    ) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            q = select(ShareEvent).where(ShareEvent.at >= t0, ShareEvent.at < t1)
            if share_id:
                q = q.where(ShareEvent.share_id == share_id)
            if actor:
                q = q.where(ShareEvent.actor == actor)
            q = q.order_by(ShareEvent.at.desc(), ShareEvent.id.desc()).limit(limit)
            with Session(self.engine) as db:
                return [
                    {
                        "share_id": e.share_id,
                        "version": e.version,
                        "actor": e.actor,
                        "action": e.action,
                        "at": iso_utc(e.at),
                        "detail": e.detail,
                    }
                    for e in db.scalars(q)
                ]

        return await asyncio.to_thread(read)

    def _read_snapshot(self, share_id: str, version: int) -> str:
        with Session(self.engine) as db:
            v = db.get(ShareVersion, (share_id, version))
        if v is None:
            raise ShareError(404, f"This share has no version {version}.", "version")
        try:
            data = self.snapshot_path(share_id, version).read_bytes()
        except OSError as e:
            raise SnapshotMissing(f"{share_id} v{version}: {e}") from None
        if hashlib.sha256(data).hexdigest() != v.sha256:
            raise SnapshotMissing(f"{share_id} v{version}: the file does not match its digest")
        return data.decode("utf-8")

    async def snapshot(self, share: Share, version: int) -> str:
        return await asyncio.to_thread(self._read_snapshot, share.id, version)

    async def preview(self, share: Share, version: int) -> str:
        """The version's HTML, rendered once (one render per version at a time) and cached."""
        path = self.preview_path(share.id, version)
        key = (share.id, version)
        lock = self._rendering.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                try:
                    return await asyncio.to_thread(path.read_text, encoding="utf-8")
                except FileNotFoundError:
                    pass
                text = await self.snapshot(share, version)
                async with self._render_slots:
                    try:
                        page = await asyncio.to_thread(previews.render, text, file_name(share.path))
                    except Exception:  # nbconvert on a notebook it cannot convert
                        log.exception("Rendering the preview of share %s v%d failed", *key)
                        raise ShareError(
                            422,
                            "This notebook cannot be shown as a preview; open a copy instead "
                            "(ask its owner to share it as 'copy').",
                        ) from None
                await asyncio.to_thread(_write_once, path, page.encode("utf-8"))
                return page
        finally:
            if not lock.locked():  # nobody waits on it: later readers find the file
                self._rendering.pop(key, None)


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
        """404 naming each recipient that does not exist or that the owner may not name."""
        if req.users is None:
            return
        hub = self.accountant.hub
        if hub is None:
            raise APIError(503, HUB_BUSY)
        try:
            found = await asyncio.gather(*(hub.user(u) for u in req.users))
            groups = (
                {g["name"]: list(g.get("users") or ()) for g in await hub.groups()}
                if (req.groups or self.sharing.users == "same-group")
                else {}
            )
        except Exception as e:  # the hub restarting; never a half-checked share
            self.log.warning("Checking share recipients with the hub failed: %s", e)
            raise APIError(503, HUB_BUSY) from None
        problems = refused_recipients(
            req.users,
            req.groups or (),
            existing_users={u for u, model in zip(req.users, found, strict=True) if model},
            existing_groups=groups,
            owner_groups=await self.my_groups(),
            owner_is_admin=bool(self.model.get("admin")),
            group_policy=self.sharing.groups,
            user_policy=self.sharing.users,
        )
        if problems:
            raise APIError(404, " ".join(m for _, m in problems), problems[0][0])


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
