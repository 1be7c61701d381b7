"""The model registry's storage at the platform service: the tables (owners, grants,
versions with their provenance, alias moves) and the model repository on disk.

Only this service writes the repository (``$MLFACTORY_DATA/hub/models`` or the configured
``models.repository``), which the models service reads and serves. An upload is a tar of a
package folder (``model.yaml`` and ``model.joblib``/``model.pkl``), streamed by
``models_api.py`` to a temporary file under a size limit, checked member by member
(``models_registry.py``), extracted by name (never ``extractall``), verified against the
card's SHA-256 and moved into a new version folder; nothing here unpickles it. Rows commit
after the files are in place. Blocking work runs in a worker thread.
"""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import tarfile
import tempfile
import zlib
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlfactory.hub.platform_config import models_repository
from mlfactory.model_api.auth import ACCESS_FILE, Access, dump_access
from mlfactory.model_api.errors import ModelAPIError
from mlfactory.model_api.package import ModelRepository, write_atomic
from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .db import ModelAliasMove, ModelGrant, ModelPredictGrant, ModelVersion, RegisteredModel
from .models_registry import (
    Member,
    Owner,
    RegistryError,
    check_members,
    check_predict_grant,
    check_write,
    member_name,
)
from .periods import iso_utc

NO_MODEL = "No model has this name in the registry; GET /api/models lists them."
INCOMING = ".incoming"  # uploads being checked, inside the repository (same filesystem)
CHUNK = 1 << 20


def _kind(info: tarfile.TarInfo) -> str:
    if info.issym():
        return "symlink"
    if info.islnk():
        return "hardlink"
    if info.isdir():
        return "dir"
    return "file" if info.isreg() else "other"


def _extract(archive: Path, staged: Path, limit: int) -> None:
    """Check the archive's members and copy the allowed ones into ``staged`` by their own
    normalised names (so nothing in the archive chooses where a byte lands). Members are
    checked as the archive is read: a compressed archive that would unpack past the limit,
    or holds a third member, is refused at that member, not after inflating all of it."""
    try:
        with tarfile.open(archive, "r:*") as tf:
            seen: dict[str, tarfile.TarInfo] = {}

            def facts() -> Iterator[Member]:
                for info in tf:
                    seen[member_name(info.name)] = info
                    yield Member(info.name, _kind(info), info.size)

            for name in check_members(facts(), limit):
                src = tf.extractfile(seen[name])
                assert src is not None  # check_members let only regular files through
                with src, open(staged / name, "xb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
    except (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise RegistryError(
            400, f"the upload is not a tar archive of a model package ({e})", "archive"
        ) from None


class Registry:
    """Registered models, their versions and aliases. Blocking work runs in a worker thread."""

    def __init__(self, engine: Engine, repo: ModelRepository, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.repo = repo
        self.clock = clock

    # --- reading ------------------------------------------------------------------------

    def _holder(self, db: Session, name: str) -> Owner | None:
        row = db.get(RegisteredModel, name)
        if row is None:
            return None
        groups = db.scalars(select(ModelGrant.group).where(ModelGrant.model == name)).all()
        return Owner(row.owner, tuple(sorted(groups)))

    def _check_owner(self, db: Session, name: str, user: str, groups: list[str]) -> None:
        """404 for an unknown model, 403 unless ``user`` (or a granted group) holds it."""
        holder = self._holder(db, name)
        if holder is None:
            raise RegistryError(404, NO_MODEL)
        check_write(holder, name, user, groups, ())

    async def holder(self, name: str) -> Owner | None:
        def read() -> Owner | None:
            with Session(self.engine) as db:
                return self._holder(db, name)

        return await asyncio.to_thread(read)

    async def names(self) -> list[dict[str, Any]]:
        def read() -> list[dict[str, Any]]:
            with Session(self.engine) as db:
                rows = db.scalars(select(RegisteredModel).order_by(RegisteredModel.name)).all()
                return [self._model(db, r, full=False) for r in rows]

        return await asyncio.to_thread(read)

    async def detail(self, name: str) -> dict[str, Any] | None:
        def read() -> dict[str, Any] | None:
            with Session(self.engine) as db:
                row = db.get(RegisteredModel, name)
                return None if row is None else self._model(db, row, full=True)

        return await asyncio.to_thread(read)

    def _model(self, db: Session, row: RegisteredModel, full: bool) -> dict[str, Any]:
        versions = db.scalars(
            select(ModelVersion)
            .where(ModelVersion.model == row.name)
            .order_by(ModelVersion.version)
        ).all()
        moves = db.scalars(
            select(ModelAliasMove)
            .where(ModelAliasMove.model == row.name)
            .order_by(ModelAliasMove.id)
        ).all()
        aliases = {m.alias: _move(m) for m in moves}  # the newest move per alias wins
        out: dict[str, Any] = {
            "name": row.name,
            "owner": row.owner,
            "created_at": iso_utc(row.created_at),
            "latest": versions[-1].version if versions else None,
            "aliases": aliases,
        }
        out["predict_groups"] = sorted(self._access(db, row.name).predict_groups)
        if full:
            grants = db.scalars(select(ModelGrant.group).where(ModelGrant.model == row.name))
            out["groups"] = sorted(grants)
            out["versions"] = [version_json(v) for v in versions]
            out["alias_history"] = [_move(m) for m in reversed(moves)]
        return out

    def _access(self, db: Session, name: str) -> Access:
        row = db.get(RegisteredModel, name)
        groups = db.scalars(
            select(ModelPredictGrant.group).where(ModelPredictGrant.model == name)
        ).all()
        return Access(row.owner if row else None, frozenset(groups))

    # --- writing ------------------------------------------------------------------------

    def _write_access(self, db: Session, name: str) -> None:
        """Write who may call ``name`` into the repository for the models service (atomic
        replace, then a generation bump so it is read on the next reload)."""
        folder = self.repo.root / name
        folder.mkdir(parents=True, exist_ok=True)
        write_atomic(folder / ACCESS_FILE, dump_access(self._access(db, name)))
        self.repo._bump()  # the repository's one change signal (package.py)

    def _claim(self, name: str, user: str, groups: list[str], publishers: Iterable[str]) -> bool:
        """Check the caller may publish ``name``; register it to them when new. True: new."""
        publishers = tuple(publishers)
        with Session(self.engine) as db:
            holder = self._holder(db, name)
            check_write(holder, name, user, groups, publishers)
            if holder is not None:
                return False
            db.add(RegisteredModel(name=name, owner=user, created_at=self.clock()))
            try:
                db.commit()
                return True
            except IntegrityError:  # someone registered it a moment ago: their rules apply
                db.rollback()
                check_write(self._holder(db, name), name, user, groups, publishers)
                return False

    async def check_publish(
        self, name: str, user: str, groups: list[str], publishers: Iterable[str]
    ) -> None:
        """Before the body arrives: refuse a caller who may not publish ``name``."""
        holder = await self.holder(name)
        check_write(holder, name, user, groups, tuple(publishers))

    def _publish(
        self,
        name: str,
        archive: Path,
        *,
        user: str,
        groups: list[str],
        publishers: Iterable[str],
        limit: int,
        notebook_path: str | None,
        history_version: str | None,
    ) -> dict[str, Any]:
        incoming = self.repo.root / INCOMING
        incoming.mkdir(parents=True, exist_ok=True)
        staged = Path(tempfile.mkdtemp(dir=incoming))
        new = False
        try:
            _extract(archive, staged, limit)
            new = self._claim(name, user, groups, publishers)
            # before the version exists: once served, its owner may call it at once
            with Session(self.engine) as db:
                self._write_access(db, name)
            now = self.clock()
            try:
                version, card = self.repo.import_package(
                    name,
                    staged,
                    created_by=user,
                    source_notebook=notebook_path,
                    now=datetime.fromtimestamp(now, UTC),
                )
            except ModelAPIError as e:
                # paths of the staging folder mean nothing to the caller
                msg = e.message.replace(f"{staged}{os.sep}", "").replace(str(staged), "package")
                raise RegistryError(400, f"model.yaml: {msg}", "archive") from None
            artifact = self.repo.root / name / str(version) / card.artifact.file
            row = ModelVersion(
                model=name,
                version=version,
                published_by=user,
                published_at=now,
                notebook_path=notebook_path,
                history_version=history_version,
                task=str(card.task.value if hasattr(card.task, "value") else card.task),
                framework=f"{card.framework.name} {card.framework.version}"[:128],
                mlfactory_version=card.mlfactory_version[:64],
                sha256=card.artifact.sha256,
                size=artifact.stat().st_size,
                serving=True,
            )
            with Session(self.engine) as db:
                db.add(row)
                db.commit()
                return version_json(row)
        except BaseException:
            if new:  # nothing was published under the name this call registered
                with Session(self.engine) as db:
                    if not db.scalars(
                        select(ModelVersion.version).where(ModelVersion.model == name)
                    ).first():
                        db.execute(delete(RegisteredModel).where(RegisteredModel.name == name))
                        db.commit()
                        (self.repo.root / name / ACCESS_FILE).unlink(missing_ok=True)
                        try:
                            (self.repo.root / name).rmdir()  # only when nothing else is there
                        except OSError:
                            pass
            raise
        finally:
            shutil.rmtree(staged, ignore_errors=True)

    async def publish(self, name: str, archive: Path, **kw: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self._publish, name, archive, **kw)

    def _move_alias(
        self, name: str, alias: str, version: int, user: str, groups: list[str]
    ) -> dict[str, Any]:
        with Session(self.engine) as db:
            self._check_owner(db, name, user, groups)
            if version not in self.repo.versions(name):
                raise RegistryError(
                    404,
                    f"version: model {name!r} has no version {version}; versions: "
                    f"{', '.join(map(str, self.repo.versions(name))) or 'none'}",
                    "version",
                )
            previous = self.repo.aliases(name).get(alias)
            self.repo.set_alias(name, alias, version)
            move = ModelAliasMove(
                model=name,
                alias=alias,
                version=version,
                previous=previous,
                moved_by=user,
                moved_at=self.clock(),
            )
            db.add(move)
            db.commit()
            return _move(move)

    async def move_alias(self, *args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self._move_alias, *args)

    def _set_serving(
        self, name: str, version: int, serving: bool, user: str, groups: list[str]
    ) -> dict[str, Any]:
        with Session(self.engine) as db:
            self._check_owner(db, name, user, groups)
            row = db.get(ModelVersion, (name, version))
            if row is None:
                raise RegistryError(404, f"model {name!r} has no version {version}", "version")
            now = self.clock()
            reason = f"withdrawn by {user} at {iso_utc(now)}"
            self.repo.set_serving(name, version, serving, reason)
            row.serving = serving
            row.serving_changed_by = user
            row.serving_changed_at = now
            db.commit()
            return version_json(row)

    async def set_serving(self, *args: Any) -> dict[str, Any]:
        return await asyncio.to_thread(self._set_serving, *args)

    def _locked(self, db: Session, name: str) -> RegisteredModel:
        """The model's row, locked until the transaction ends (PostgreSQL ``SELECT ... FOR
        UPDATE``; SQLite has one writer at a time anyway): two changes of who may use a
        model apply one after the other, never interleaved."""
        row = db.scalars(
            select(RegisteredModel).where(RegisteredModel.name == name).with_for_update()
        ).one_or_none()
        if row is None:
            raise RegistryError(404, NO_MODEL)
        return row

    def _update_access(
        self,
        name: str,
        user: str,
        *,
        admin: bool = False,
        known: set[str] | None = None,
        groups: list[str] | None = None,
        predict_groups: list[str] | None = None,
    ) -> dict[str, list[str]]:
        """Set who may publish (``groups``, the owner only) and who may call
        (``predict_groups``, the owner or an admin) in one transaction: every check passes
        before anything changes, so a refusal of one leaves the other unchanged too."""
        with Session(self.engine) as db:
            row = self._locked(db, name)
            wanted: dict[str, list[str]] = {}
            if predict_groups is not None:
                holder = self._holder(db, name)
                wanted["predict_groups"] = check_predict_grant(
                    holder, name, user, admin, predict_groups, known or set()
                )
            if groups is not None:
                if row.owner != user:
                    raise RegistryError(
                        403,
                        f"Only {row.owner}, the owner of {name!r}, can change who may publish it.",
                        "groups",
                    )
                wanted["groups"] = sorted(set(groups))
            if "groups" in wanted:
                db.execute(delete(ModelGrant).where(ModelGrant.model == name))
                db.add_all(ModelGrant(model=name, group=g) for g in wanted["groups"])
            if "predict_groups" in wanted:
                db.execute(delete(ModelPredictGrant).where(ModelPredictGrant.model == name))
                db.add_all(ModelPredictGrant(model=name, group=g) for g in wanted["predict_groups"])
                db.flush()
                # files first: if the write fails, the rows roll back and nothing changed
                self._write_access(db, name)
            db.commit()
            return wanted

    async def update_access(self, name: str, user: str, **changes: Any) -> dict[str, list[str]]:
        return await asyncio.to_thread(self._update_access, name, user, **changes)

    def _grant(self, name: str, groups: list[str], user: str) -> list[str]:
        return self._update_access(name, user, groups=groups)["groups"]

    async def grant(self, name: str, groups: list[str], user: str) -> list[str]:
        return await asyncio.to_thread(self._grant, name, groups, user)

    def _grant_predict(
        self, name: str, groups: list[str], user: str, admin: bool, known: set[str]
    ) -> list[str]:
        return self._update_access(name, user, admin=admin, known=known, predict_groups=groups)[
            "predict_groups"
        ]

    async def grant_predict(
        self, name: str, groups: list[str], user: str, admin: bool, known: set[str]
    ) -> list[str]:
        """Set the groups whose members may call ``name`` (owner or admin)."""
        return await asyncio.to_thread(self._grant_predict, name, groups, user, admin, known)

    def write_missing_access(self) -> list[str]:
        """Write ``access.yaml`` for every registered model that has none (models registered
        before predict grants existed): without it the models service lets in only the
        holders of the model's scopes, not even its owner. Returns the names written."""
        written = []
        with Session(self.engine) as db:
            for name in db.scalars(select(RegisteredModel.name).order_by(RegisteredModel.name)):
                if not (self.repo.root / name / ACCESS_FILE).exists():
                    self._write_access(db, name)
                    written.append(name)
        return written


def registry_for(app: Any) -> Registry:
    """The application's model registry (made at its first use)."""
    settings = app.settings
    found = settings.get("model_registry")
    if found is None:
        accountant = settings["accountant"]
        root = settings.get("models_repository") or models_repository(
            accountant.config.models.repository
        )
        found = settings["model_registry"] = Registry(
            accountant.store.engine, ModelRepository(root), accountant.clock
        )
    return found


async def start_registry(app: Any) -> list[str]:
    """At service start: give every registered model its ``access.yaml``."""
    return await asyncio.to_thread(registry_for(app).write_missing_access)


def version_json(v: ModelVersion) -> dict[str, Any]:
    return {
        "version": v.version,
        "published_by": v.published_by,
        "published_at": iso_utc(v.published_at),
        "notebook_path": v.notebook_path,
        "history_version": v.history_version,
        "task": v.task,
        "framework": v.framework,
        "mlfactory_version": v.mlfactory_version,
        "sha256": v.sha256,
        "size": v.size,
        "serving": v.serving,
        "serving_changed_by": v.serving_changed_by,
        "serving_changed_at": None
        if v.serving_changed_at is None
        else iso_utc(v.serving_changed_at),
    }


def _move(m: ModelAliasMove) -> dict[str, Any]:
    return {
        "alias": m.alias,
        "version": m.version,
        "previous": m.previous,
        "moved_by": m.moved_by,
        "moved_at": iso_utc(m.moved_at),
    }
