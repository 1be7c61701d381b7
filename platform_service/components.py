"""Published components: users' submissions and the shared namespace maintainers review them
into, stored under the service's components dir and indexed in its database.

``users/<user>/<name>/<version>/`` holds a user's submission, ``shared/<name>/<version>/`` an
approved copy that is never replaced. Folders are checked with the component spec (parsed,
never imported). The rules are in ``mlfactory.components.submissions``; this module does
the I/O and the routes.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import shutil
from collections.abc import Callable, Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

from mlfactory.components.scaffold import replace_dir
from mlfactory.components.spec import InvalidComponent, load_component
from mlfactory.components.submissions import (
    MAX_BYTES,
    SUBMISSION_ID,
    Review,
    Submission,
    SubmissionError,
    as_json,
    check_files,
    check_name_version,
    check_status_filter,
    review,
    submit,
    user_folder,
)
from mlfactory.hub.platform_config import hub_state_dir
from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from tornado import web

from .base import APIError, UserHandler
from .db import ComponentSubmission, PublishedComponent
from .periods import iso_utc
from .scopes import COMPONENTS_REVIEW

# A 1 MB submission as JSON: escapes can double text; anything far larger is not a component.
MAX_UPLOAD = 4 * MAX_BYTES


def components_dir() -> Path:
    """Where submissions live by default: the hub's private part of the data dir."""
    return hub_state_dir() / "components"


class InvalidSubmission(SubmissionError):
    """The folder breaks the component spec: ``errors`` are its "file: key: message" lines."""

    def __init__(self, errors: list[dict[str, str]]) -> None:
        lines = [f"{e['file']}: {e['key'] or '(top)'}: {e['message']}" for e in errors]
        super().__init__(400, "The component is not valid: " + "; ".join(lines), "files")
        self.errors = errors


class SpecAPIError(APIError):
    """A 400 that lists the spec's errors one by one as well."""

    def __init__(self, message: str, errors: list[dict[str, str]]) -> None:
        super().__init__(400, message, "files")
        self.errors = errors


def _spec_errors(e: InvalidComponent, folder: Path) -> list[dict[str, str]]:
    out = []
    for err in e.errors:
        try:
            file = Path(err.file).relative_to(folder).as_posix()
        except ValueError:  # never the staging path: it would tell users where the data is
            file = Path(err.file).name
        # the spec names the folder ("not found in <folder>/"): here a staging name
        message = err.message.replace(str(folder), "the component folder")
        message = message.replace(f"{folder.name}/", "the component folder")
        out.append({"file": file, "key": err.key, "message": message})
    return out


def _to_submission(row: ComponentSubmission) -> Submission:
    return Submission(
        id=row.id,
        owner=row.owner,
        name=row.name,
        version=row.version,
        summary=row.summary,
        status=row.status,  # type: ignore[arg-type]
        submitted_at=row.submitted_at,
        files=tuple(row.files),
        reviewer=row.reviewer,
        note=row.note,
        reviewed_at=row.reviewed_at,
        history=tuple(Review(**r) for r in row.history),
    )


def _store(row: ComponentSubmission, sub: Submission) -> None:
    for key in ("owner", "name", "version", "summary", "status", "submitted_at", "reviewer"):
        setattr(row, key, getattr(sub, key))
    row.files = list(sub.files)
    row.note = sub.note
    row.reviewed_at = sub.reviewed_at
    row.history = [vars(r).copy() for r in sub.history]


def _write(folder: Path, files: Mapping[str, str]) -> None:
    folder.mkdir(parents=True)
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def _read(folder: Path, names: Iterable[str]) -> dict[str, str]:
    return {n: (folder / n).read_text(encoding="utf-8") for n in names}


class ComponentRegistry:
    """Submissions and published components: the database rows and the folders behind them.

    Blocking work runs in a thread; one lock orders the changes, so two uploads of the same
    version cannot interleave their folder swaps (the service is a single process).
    """

    def __init__(self, engine: Engine, root: Path, clock: Callable[[], float]) -> None:
        self.engine = engine
        self.root = Path(root)
        self.clock = clock
        self._lock = asyncio.Lock()

    def user_path(self, sub: Submission) -> Path:
        return self.root / "users" / user_folder(sub.owner) / sub.name / sub.version

    def shared_path(self, name: str, version: str) -> Path:
        return self.root / "shared" / name / version

    def _staging(self) -> Path:
        return self.root / "staging" / secrets.token_hex(8)

    # -- changes -------------------------------------------------------------------------

    async def submit(self, owner: str, files: Any) -> Submission:
        checked = check_files(files)
        async with self._lock:
            return await asyncio.to_thread(self._submit, owner, checked)

    def _submit(self, owner: str, files: dict[str, str]) -> Submission:
        staging = self._staging()
        _write(staging, files)
        try:
            try:
                comp = load_component(staging, source="submission")
            except InvalidComponent as e:
                raise InvalidSubmission(_spec_errors(e, staging)) from None
            doc = comp.doc_file.relative_to(staging).as_posix() if comp.doc_file else None
            if doc not in files:  # `doc: ../x` would point the catalog outside the folder
                raise InvalidSubmission(
                    [
                        {
                            "file": "component.yaml",
                            "key": "doc",
                            "message": "must name a file of the component, e.g. README.md",
                        }
                    ]
                )
            name, version = check_name_version(comp.name, str(comp.version))
            with Session(self.engine) as db, db.begin():
                row = db.scalar(
                    select(ComponentSubmission).where(
                        ComponentSubmission.owner == owner,
                        ComponentSubmission.name == name,
                        ComponentSubmission.version == version,
                    )
                )
                published = db.get(PublishedComponent, (name, version)) is not None
                sub = submit(
                    _to_submission(row) if row else None,
                    new_id=secrets.token_hex(8),
                    owner=owner,
                    name=name,
                    version=version,
                    summary=comp.summary,
                    files=files,
                    now=self.clock(),
                    published=published,
                    waiting=db.scalar(
                        select(func.count())
                        .select_from(ComponentSubmission)
                        .where(
                            ComponentSubmission.owner == owner,
                            ComponentSubmission.status == "pending",
                        )
                    )
                    or 0,
                )
                if row is None:
                    row = ComponentSubmission(id=sub.id)
                    db.add(row)
                _store(row, sub)
                db.flush()
                replace_dir(staging, self.user_path(sub))
            return sub
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    async def review(
        self,
        sub_id: str,
        *,
        decision: Any,
        note: Any,
        reviewer: str,
        is_admin: bool,
        seen: Any = None,
    ) -> Submission:
        async with self._lock:
            return await asyncio.to_thread(
                self._review, sub_id, decision, note, reviewer, is_admin, seen
            )

    def _review(
        self, sub_id: str, decision: Any, note: Any, reviewer: str, is_admin: bool, seen: Any
    ) -> Submission:
        staging = self._staging()
        try:
            with Session(self.engine) as db, db.begin():
                row = db.get(ComponentSubmission, sub_id)
                if row is None:
                    raise SubmissionError(404, "No submission has this id.")
                before = _to_submission(row)
                published = db.get(PublishedComponent, (row.name, row.version)) is not None
                sub = review(
                    before,
                    decision=decision,
                    note=note,
                    reviewer=reviewer,
                    reviewer_is_admin=is_admin,
                    now=self.clock(),
                    published=published,
                    seen=seen,
                )
                _store(row, sub)
                if sub.status == "approved":
                    shutil.copytree(self.user_path(sub), staging)
                    db.add(
                        PublishedComponent(
                            name=sub.name,
                            version=sub.version,
                            submission_id=sub.id,
                            owner=sub.owner,
                            published_at=sub.reviewed_at,
                            published_by=reviewer,
                        )
                    )
                    db.flush()  # the primary key refuses a second copy of name@version here
                    # a folder without a row is left from a crash before a commit: replace it
                    replace_dir(staging, self.shared_path(sub.name, sub.version))
            return sub
        except IntegrityError:
            raise SubmissionError(409, "This version was published meanwhile.", "version") from None
        finally:
            shutil.rmtree(staging, ignore_errors=True)

    # -- reading -------------------------------------------------------------------------

    async def get(self, sub_id: str) -> Submission | None:
        def read() -> Submission | None:
            with Session(self.engine) as db:
                row = db.get(ComponentSubmission, sub_id)
                return _to_submission(row) if row else None

        return await asyncio.to_thread(read)

    async def files(self, sub: Submission) -> dict[str, str]:
        return await asyncio.to_thread(_read, self.user_path(sub), sub.files)

    async def list(self, owners: Collection[str] | None, status: str | None) -> list[Submission]:
        """Submissions, newest first; ``owners`` None means everyone's."""

        def read() -> list[Submission]:
            q = select(ComponentSubmission).order_by(
                ComponentSubmission.submitted_at.desc(), ComponentSubmission.id
            )
            if owners is not None:
                q = q.where(ComponentSubmission.owner.in_(sorted(owners)))
            if status is not None:
                q = q.where(ComponentSubmission.status == status)
            with Session(self.engine) as db:
                return [_to_submission(r) for r in db.scalars(q)]

        return await asyncio.to_thread(read)

    async def published(self, user: str, since: str | None) -> dict[str, Any]:
        """The shared namespace and ``user``'s pending submissions, with their files, for a
        server to lay out as catalog sources; only ``{"etag", "unchanged"}`` when ``since``
        is still current."""
        return await asyncio.to_thread(self._published, user, since)

    def _published(self, user: str, since: str | None) -> dict[str, Any]:
        with Session(self.engine) as db:
            shared = list(
                db.scalars(
                    select(PublishedComponent).order_by(
                        PublishedComponent.name, PublishedComponent.published_at
                    )
                )
            )
            mine = [
                _to_submission(r)
                for r in db.scalars(
                    select(ComponentSubmission)
                    .where(ComponentSubmission.owner == user)
                    .where(ComponentSubmission.status == "pending")
                    .order_by(ComponentSubmission.name, ComponentSubmission.version)
                )
            ]
            shared_files = {
                (p.name, p.version): db.get(ComponentSubmission, p.submission_id) for p in shared
            }
        state = json.dumps(
            [[p.name, p.version] for p in shared] + [[s.id, s.submitted_at] for s in mine]
        )
        etag = hashlib.sha256(state.encode()).hexdigest()[:32]
        if since == etag:
            return {"etag": etag, "unchanged": True}
        out_shared = []
        for p in shared:
            row = shared_files[(p.name, p.version)]
            names = row.files if row is not None else []
            out_shared.append(
                {
                    "name": p.name,
                    "version": p.version,
                    "owner": p.owner,
                    "published_at": iso_utc(p.published_at),
                    "files": _read(self.shared_path(p.name, p.version), names),
                }
            )
        out_mine = [
            {
                "id": s.id,
                "name": s.name,
                "version": s.version,
                "status": s.status,
                "submitted_at": iso_utc(s.submitted_at),
                "files": _read(self.user_path(s), s.files),
            }
            for s in mine
        ]
        return {"etag": etag, "unchanged": False, "shared": out_shared, "mine": out_mine}


# --- REST -------------------------------------------------------------------------------


class ComponentsHandler(UserHandler):
    """Base of the component routes: the registry, reviewer checks and richer 400s."""

    @property
    def registry(self) -> ComponentRegistry:
        settings = self.application.settings
        registry = settings.get("components")
        if registry is None:  # built on first use, next to the accountant's database
            registry = settings["components"] = ComponentRegistry(
                self.accountant.store.engine,
                settings.get("components_dir") or components_dir(),
                self.accountant.clock,
            )
        return registry

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, SpecAPIError):
            body = {"error": exc.message, "field": exc.field, "errors": exc.errors}
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps(body))
            return
        super().write_error(status_code, **kwargs)

    @staticmethod
    def fail(e: SubmissionError) -> APIError:
        if isinstance(e, InvalidSubmission):
            return SpecAPIError(e.message, e.errors)
        return APIError(e.status, e.message, e.field)

    async def reviewable_owners(self) -> set[str] | None:
        """Whose submissions the caller may review: None for everyone's, else a set
        (empty without the review scope; ``!group=`` filters reach the group's members)."""
        v = self.visibility(COMPONENTS_REVIEW)
        if v.everyone:
            return None
        owners = set(v.users)
        if v.groups:
            members = await self.accountant.members()
            owners |= {u for u, gs in members.items() if v.groups & set(gs)}
        return owners

    async def visible(self, sub_id: str) -> tuple[Submission, set[str] | None]:
        """The submission, if the caller owns it or may review it; 404 otherwise (the same
        answer as for an id that does not exist, so ids of others leak nothing)."""
        if not SUBMISSION_ID.fullmatch(sub_id):
            raise APIError(404, "No submission has this id.")
        sub = await self.registry.get(sub_id)
        owners = await self.reviewable_owners()
        me = self.model["name"]
        if sub is None or not (sub.owner == me or owners is None or sub.owner in owners):
            raise APIError(404, "No submission has this id.")
        return sub, owners


class SubmissionsHandler(ComponentsHandler):
    @web.authenticated
    async def get(self) -> None:
        try:
            status = check_status_filter(self.get_argument("status", None))
        except SubmissionError as e:
            raise self.fail(e) from None
        me = self.model["name"]
        owners = await self.reviewable_owners()
        v = self.visibility(COMPONENTS_REVIEW)
        can_review = v.everyone or bool(v.users or v.groups)
        rows = await self.registry.list(None if owners is None else owners | {me}, status)
        self.write_json(
            {"submissions": [as_json(s, iso_utc) for s in rows], "can_review": can_review}
        )

    @web.authenticated
    async def post(self) -> None:
        if len(self.request.body) > MAX_UPLOAD:
            raise APIError(
                413, f"The upload is too large; a component may have {MAX_BYTES:,} bytes."
            )
        body = self.json_body(max_size=MAX_UPLOAD)
        # the owner is whoever the token belongs to; a body naming someone else is ignored
        try:
            sub = await self.registry.submit(self.model["name"], body.get("files"))
        except SubmissionError as e:
            raise self.fail(e) from None
        self.write_json({"submission": as_json(sub, iso_utc)}, status=201)


class SubmissionHandler(ComponentsHandler):
    @web.authenticated
    async def get(self, sub_id: str) -> None:
        sub, _ = await self.visible(sub_id)
        out = as_json(sub, iso_utc)
        out["contents"] = await self.registry.files(sub)
        self.write_json({"submission": out})


class ReviewHandler(ComponentsHandler):
    @web.authenticated
    async def post(self, sub_id: str) -> None:
        self.require(COMPONENTS_REVIEW)
        sub, owners = await self.visible(sub_id)
        if not (owners is None or sub.owner in owners):
            raise APIError(404, "No submission has this id.")  # their own, outside the filter
        body = self.json_body()
        try:
            sub = await self.registry.review(
                sub.id,
                decision=body.get("decision"),
                note=body.get("note"),
                reviewer=self.model["name"],
                is_admin=bool(self.model.get("admin")),
                seen=body.get("revision"),
            )
        except SubmissionError as e:
            raise self.fail(e) from None
        self.write_json({"submission": as_json(sub, iso_utc)})


class PublishedHandler(ComponentsHandler):
    @web.authenticated
    async def get(self) -> None:
        since = self.get_argument("since", None)
        if since is not None and len(since) > 64:
            raise APIError(400, "since: an etag from an earlier answer", field="since")
        self.write_json(await self.registry.published(self.model["name"], since))


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/api/components/submissions", SubmissionsHandler),
    (r"/api/components/submissions/([0-9a-f]{16})", SubmissionHandler),
    (r"/api/components/submissions/([0-9a-f]{16})/review", ReviewHandler),
    (r"/api/components/published", PublishedHandler),
]
