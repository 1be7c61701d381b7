"""The notebook-share store: rows in the service's database and snapshots as files.

Snapshots are files, ``<shares dir>/<id>/v<version>.ipynb``, written once (temporary file,
then rename) before their row commits, with the row holding size and SHA-256; the rendered
preview sits next to them as ``v<version>.html``. Files, not BLOBs: a 5 MB notebook per
version would bloat the ledger's database, its WAL and its backups, and these are read whole
and never queried. The rules are in ``shares.py``; the routes in ``share_api.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import secrets
import shutil
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from mlfactory.hub.platform_config import hub_state_dir
from sqlalchemy import and_, delete, exists, or_, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session
from tornado.log import app_log as log

from . import previews, share_retention
from .db import NotebookShare, ShareEvent, ShareRecipient, ShareVersion
from .periods import iso_utc
from .shares import (
    Request,
    Share,
    ShareError,
    file_name,
)

NOT_FOUND = "No share has this id, or it was revoked or has expired."
PURGED = (
    "This share ended and its snapshots were deleted after the platform's retention "
    "(sharing.retention.keep_revoked); the audit still records it."
)
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
    # nbformat brings jsonschema and its format checkers (~20 MiB resident): imported by the
    # first share, not with the service (tests/service/test_service_imports.py)
    import nbformat

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

    async def purge_ended(self, keep_s: int | None) -> list[str]:
        """Delete the snapshots (and previews) of shares ended ``keep_s`` ago or more, keeping
        their rows, versions and audit; each deletion is audited as ``purge``. An expired
        share is ended for good then (revoked), since nothing is left to renew. Returns the
        ids purged."""
        if keep_s is None:
            return []
        now = self.clock()
        purged: list[str] = []
        for share_id in await asyncio.to_thread(self._due, keep_s, now):
            if await asyncio.to_thread(self._mark_purged, share_id, keep_s, now):
                # after the commit: a crash leaves files to delete, never rows without files
                await asyncio.to_thread(shutil.rmtree, self.root / share_id, True)
                purged.append(share_id)
        if purged:
            log.info("Deleted the snapshots of %d ended share(s): %s", len(purged), purged)
        return purged

    def _due(self, keep_s: int, now: float) -> list[str]:
        bound = share_retention.cutoff(keep_s, now)
        already = exists().where(
            ShareEvent.share_id == NotebookShare.id, ShareEvent.action == "purge"
        )
        q = select(NotebookShare.id, NotebookShare.revoked_at, NotebookShare.expires_at).where(
            or_(NotebookShare.revoked_at <= bound, NotebookShare.expires_at <= bound), ~already
        )
        with self.engine.connect() as conn:
            rows = [share_retention.Ended(*row) for row in conn.execute(q)]
        return share_retention.due(rows, keep_s, now)

    def _mark_purged(self, share_id: str, keep_s: int, now: float) -> bool:
        with Session(self.engine) as db, db.begin():
            row = db.get(NotebookShare, share_id, with_for_update=True)
            ended = share_retention.Ended(share_id, row.revoked_at, row.expires_at) if row else None
            if ended is None or not share_retention.is_due(ended, keep_s, now):
                return False  # renewed meanwhile, or gone
            if row.revoked_at is None:
                row.revoked_at = now
            detail = {"versions": row.version, "kept_seconds": keep_s}
            self._event(db, share_id, row.version, share_retention.ACTOR, "purge", now, detail)
        return True

    def _was_purged(self, share_id: str) -> bool:
        q = select(ShareEvent.id).where(
            ShareEvent.share_id == share_id, ShareEvent.action == "purge"
        )
        with self.engine.connect() as conn:
            return conn.execute(q.limit(1)).first() is not None

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
            if self._was_purged(share_id):  # deleted on purpose: say so, not "disk trouble"
                raise ShareError(410, PURGED) from None
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
