"""Component submissions: what a published folder may contain and how a submission moves from
``pending`` to ``approved`` or ``rejected``. Pure: no I/O, no clock (``now`` is passed in).

Two processes need these rules, so they live with the components: the platform service
(``mlfactory.service.components``) stores what they accept, and the user's server
(``mlfactory.server.component_publish``) checks a folder with the same limits before
uploading it, so a user hears about a bad name before the round trip.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, Literal
from urllib.parse import quote

MAX_FILES = 20
MAX_BYTES = 1_000_000  # all files together, UTF-8 encoded
MAX_DEPTH = 3  # "tests/data/x.csv" at most
MAX_NOTE = 2000
MAX_PENDING = 50  # per user
STATUSES = ("pending", "approved", "rejected")
DECISIONS = ("approve", "reject")
# Component names and versions as the component schema allows them (re-checked here because
# they become folder names before the schema has read the file).
NAME = re.compile(r"[a-z][a-z0-9_]{1,63}")
VERSION = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(-[0-9A-Za-z.-]+)?(\+[0-9A-Za-z.-]+)?"
)
MAX_VERSION = 64
SUBMISSION_ID = re.compile(r"[0-9a-f]{16}")
# One path segment: no leading dot (no "..", no hidden files), no separators or colons.
_SEGMENT = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")

Status = Literal["pending", "approved", "rejected"]


class SubmissionError(ValueError):
    """A refusal a user can act on; ``status`` is the HTTP code the service answers with."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


def check_path(path: Any) -> str:
    """A file name inside a component folder: relative, ``/``-separated, safe segments."""
    if not isinstance(path, str) or not path:
        raise SubmissionError(400, "files: every file name must be a non-empty string", "files")
    segments = path.split("/")
    if len(segments) > MAX_DEPTH or not all(_SEGMENT.fullmatch(s) for s in segments):
        shown = path if len(path) <= 120 else path[:117] + "..."
        raise SubmissionError(
            400,
            f"files: {shown!r} is not a safe relative name (letters, digits, '_', '-', '.'; "
            f"no leading '.', at most {MAX_DEPTH} levels, '/' between folders)",
            "files",
        )
    if segments[0] == "__pycache__" or segments[-1].endswith((".pyc", ".pyo")):
        raise SubmissionError(400, f"files: {path!r}: compiled Python is not accepted", "files")
    return path


def check_files(files: Any) -> dict[str, str]:
    """The files of one submission (name → UTF-8 text), within the limits; raises otherwise."""
    if not isinstance(files, Mapping) or not files:
        raise SubmissionError(
            400, "files: an object of file name to text is required", field="files"
        )
    if len(files) > MAX_FILES:
        raise SubmissionError(
            413, f"files: {len(files)} files; a component may have at most {MAX_FILES}", "files"
        )
    out: dict[str, str] = {}
    seen: dict[str, str] = {}
    total = 0
    for name, text in files.items():
        check_path(name)
        if not isinstance(text, str):
            raise SubmissionError(400, f"files: {name!r}: the content must be text", "files")
        if "\x00" in text:
            raise SubmissionError(400, f"files: {name!r}: binary content is not accepted", "files")
        folded = name.casefold()
        if folded in seen:  # two names one case-insensitive file system would merge
            raise SubmissionError(400, f"files: {name!r} and {seen[folded]!r} clash", "files")
        seen[folded] = name
        total += len(text.encode("utf-8", "surrogatepass"))
        out[name] = text
    if total > MAX_BYTES:
        raise SubmissionError(
            413,
            f"files: {total:,} bytes in all; a component may have at most {MAX_BYTES:,}",
            "files",
        )
    # a file and a folder of the same name cannot both exist on disk
    folders = {"/".join(p.split("/")[:i]) for p in out for i in range(1, p.count("/") + 1)}
    for clash in sorted(folders & set(out)):
        raise SubmissionError(400, f"files: {clash!r} is both a file and a folder", "files")
    if "component.yaml" not in out:
        raise SubmissionError(400, "files: component.yaml is missing", "files")
    return out


def check_name_version(name: Any, version: Any) -> tuple[str, str]:
    if not isinstance(name, str) or not NAME.fullmatch(name):
        raise SubmissionError(400, f"component.yaml: name: {name!r} is not a component name")
    if not isinstance(version, str) or len(version) > MAX_VERSION or not VERSION.fullmatch(version):
        raise SubmissionError(400, f"component.yaml: version: {version!r} is not a version")
    return name, version


def user_folder(user: str) -> str:
    """A hub user name as one folder name: reversible and never ``.``, ``..`` or hidden."""
    return quote(user, safe="").replace(".", "%2E").replace("~", "%7E") or "%00"


@dataclass(frozen=True)
class Review:
    decision: str
    reviewer: str
    note: str
    at: float


@dataclass(frozen=True)
class Submission:
    """One slot of a user's namespace: ``users/<owner>/<name>/<version>/``."""

    id: str
    owner: str
    name: str
    version: str
    summary: str
    status: Status
    submitted_at: float
    files: tuple[str, ...]
    reviewer: str | None = None
    note: str = ""
    reviewed_at: float | None = None
    # earlier reviews of this slot, oldest first (a rejected version may be submitted again)
    history: tuple[Review, ...] = field(default=())


def submit(
    existing: Submission | None,
    *,
    new_id: str,
    owner: str,
    name: str,
    version: str,
    summary: str,
    files: Iterable[str],
    now: float,
    published: bool,
    waiting: int = 0,
) -> Submission:
    """The submission that ``owner`` uploading ``name@version`` leads to.

    ``waiting`` is how many of the owner's other submissions wait for review: beyond
    MAX_PENDING a new one is refused, so one user cannot fill the hub's disk.

    ``existing`` is the owner's earlier submission of the same version, ``published`` whether
    the shared namespace has that version (from anyone). A pending one is replaced; a
    rejected one is reopened, keeping its review in ``history``; an approved or published
    version is immutable.
    """
    ref = f"{name}@{version}"
    if published or (existing is not None and existing.status == "approved"):
        raise SubmissionError(
            409,
            f"{ref} is already published and cannot be replaced; "
            "raise the version in component.yaml and publish again.",
            "version",
        )
    if (existing is None or existing.status != "pending") and waiting >= MAX_PENDING:
        raise SubmissionError(
            409,
            f"You have {waiting} submissions waiting for review (at most {MAX_PENDING}); "
            "ask a maintainer to review them, or publish again over one of them.",
        )
    names = tuple(sorted(files))
    if existing is None:
        return Submission(new_id, owner, name, version, summary, "pending", now, names)
    history = existing.history
    if existing.status == "rejected":
        history = (
            *history,
            Review("reject", existing.reviewer or "", existing.note, existing.reviewed_at or now),
        )
    return replace(
        existing,
        summary=summary,
        status="pending",
        submitted_at=now,
        files=names,
        reviewer=None,
        note="",
        reviewed_at=None,
        history=history,
    )


def revision(sub: Submission) -> str:
    """Which upload of a submission a reviewer saw: a re-submission (same name and version,
    while pending) changes it, so an approval never covers files nobody read."""
    return f"{sub.submitted_at:.6f}"


def review(
    sub: Submission,
    *,
    decision: Any,
    note: Any,
    reviewer: str,
    reviewer_is_admin: bool,
    now: float,
    published: bool,
    seen: Any = None,
) -> Submission:
    """``sub`` after a reviewer's decision; only pending submissions are reviewed.

    A maintainer may not approve their own component (a second pair of eyes); hub admins
    may, and the record names whoever decided. Rejecting needs a note the author can act on.
    Approving needs ``seen``, the ``revision`` the reviewer read: when the author uploaded
    again since, the decision is refused (409) rather than applied to unread files.
    """
    if decision not in DECISIONS:
        raise SubmissionError(400, "decision: use approve or reject", "decision")
    if note is None:
        note = ""
    if not isinstance(note, str) or len(note) > MAX_NOTE:
        raise SubmissionError(400, f"note: text of at most {MAX_NOTE} characters", "note")
    note = note.strip()
    if sub.status != "pending":
        raise SubmissionError(
            409,
            f"{sub.name}@{sub.version} was already {sub.status}; only pending ones are reviewed",
        )
    if decision == "approve" and sub.owner == reviewer and not reviewer_is_admin:
        raise SubmissionError(
            403, "You cannot approve your own component; ask another maintainer to review it."
        )
    if decision == "reject" and not note:
        raise SubmissionError(400, "note: say why it is rejected, so the author can fix it", "note")
    if decision == "approve" and published:
        raise SubmissionError(
            409, f"{sub.name}@{sub.version} is already published; it cannot be replaced", "version"
        )
    if decision == "approve" and seen is None:
        raise SubmissionError(
            400, "revision: give the revision of the submission you reviewed", "revision"
        )
    if seen is not None and seen != revision(sub):
        raise SubmissionError(
            409,
            f"{sub.name}@{sub.version} was uploaded again after you opened it; "
            "read the new files, then decide",
            "revision",
        )
    status: Status = "approved" if decision == "approve" else "rejected"
    return replace(sub, status=status, reviewer=reviewer, note=note, reviewed_at=now)


def check_status_filter(value: str | None) -> str | None:
    if value in (None, "", "all"):
        return None
    if value not in STATUSES:
        raise SubmissionError(400, f"status: use one of {', '.join(STATUSES)} or all", "status")
    return value


def as_json(sub: Submission, iso: Any) -> dict[str, Any]:
    """The REST shape of a submission; ``iso`` turns epoch seconds into ISO text."""
    return {
        "id": sub.id,
        "name": sub.name,
        "version": sub.version,
        "owner": sub.owner,
        "summary": sub.summary,
        "status": sub.status,
        "submitted_at": iso(sub.submitted_at),
        "revision": revision(sub),
        "reviewer": sub.reviewer,
        "note": sub.note,
        "reviewed_at": iso(sub.reviewed_at),
        "files": list(sub.files),
        "history": [
            {"decision": r.decision, "reviewer": r.reviewer, "note": r.note, "at": iso(r.at)}
            for r in sub.history
        ],
    }
