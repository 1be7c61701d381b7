"""The model registry, the rules: model and alias names, who may publish a version or move an
alias, which archive members an upload may hold, and the size limit. Pure: no I/O and no
clock; the routes, the tables and the repository on disk are ``models_api.py``.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Collection, Iterable
from dataclasses import dataclass

from mlfactory.model_api.package import ALIAS_PATTERN, CARD
from mlfactory.model_api.specs import NAME_PATTERN

MODEL_NAME = re.compile(NAME_PATTERN)
ALIAS = re.compile(ALIAS_PATTERN)
# the members a package archive may hold: the card and one serialized model, nothing else
MEMBERS = frozenset({CARD, "model.joblib", "model.pkl"})
MAX_PATH = 1024
MAX_NAME = 255


class RegistryError(ValueError):
    """A request the rules refuse: ``status`` is what the route answers, ``field`` the key."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Owner:
    """Who holds a model: its owner (the first publisher) and the groups granted it."""

    owner: str
    groups: tuple[str, ...] = ()


@dataclass(frozen=True)
class Member:
    """One archive member as the rules see it (a ``tarfile.TarInfo`` reduced to facts)."""

    name: str
    kind: str  # "file", "dir", "symlink", "hardlink", "other"
    size: int = 0


def member_name(raw: str) -> str:
    """An archive member's name as the checks and the extraction both see it."""
    return posixpath.normpath(raw.replace("\\", "/"))


def check_name(name: str) -> str:
    if not isinstance(name, str) or not MODEL_NAME.fullmatch(name):
        raise RegistryError(
            404 if isinstance(name, str) else 400,
            f"{name!r} is not a model name: use letters, digits, '-', '_' and '.', "
            "starting with a letter or digit",
            "name",
        )
    return name


def check_alias(alias: str) -> str:
    if not ALIAS.fullmatch(alias or ""):
        raise RegistryError(
            400,
            f"alias {alias!r}: use a lowercase word such as 'staging' or 'production' "
            "(a number names a version)",
            "alias",
        )
    return alias


def check_provenance(notebook_path: str | None, history_version: str | None) -> None:
    if notebook_path is not None and (
        len(notebook_path) > MAX_PATH or "\x00" in notebook_path or notebook_path.startswith("/")
    ):
        raise RegistryError(
            400,
            f"notebook_path: a path relative to the workspace, at most {MAX_PATH} characters",
            "notebook_path",
        )
    if history_version is not None and not re.fullmatch(r"[0-9A-Za-z._-]{1,64}", history_version):
        raise RegistryError(
            400,
            "history_version: the notebook's History version (a commit id, 1-64 characters)",
            "history_version",
        )


def may_create(user: str, groups: Collection[str], publishers: Collection[str]) -> bool:
    """Anyone may register a new model name unless ``models.publishers`` lists groups."""
    return not publishers or any(g in publishers for g in groups)


def may_write(holder: Owner, user: str, groups: Iterable[str]) -> bool:
    """Publish a version, move an alias, stop serving a version: the owner or a granted group."""
    return user == holder.owner or any(g in holder.groups for g in groups)


def check_write(
    holder: Owner | None,
    name: str,
    user: str,
    groups: Collection[str],
    publishers: Collection[str],
) -> None:
    if holder is None:
        if not may_create(user, groups, publishers):
            raise RegistryError(
                403,
                f"Only members of {', '.join(sorted(publishers))} may publish new models; "
                "ask an admin to add you to one of these groups.",
            )
        return
    if not may_write(holder, user, groups):
        granted = f" or a member of {', '.join(holder.groups)}" if holder.groups else ""
        raise RegistryError(
            403,
            f"The model {name!r} belongs to {holder.owner}; only its owner{granted} can "
            f"publish versions or move its aliases. Ask {holder.owner} to grant you a group, "
            "or publish under another name.",
        )


def check_predict_grant(
    holder: Owner | None, name: str, user: str, admin: bool, groups: Iterable[str], known: set[str]
) -> list[str]:
    """Who may call a model besides its scopes' holders: set by its owner or an admin, and
    only to groups that exist (a typo would grant nobody and look like it worked)."""
    if holder is None:
        raise RegistryError(
            404, "No model has this name in the registry; GET /api/models lists them."
        )
    if not admin and user != holder.owner:
        raise RegistryError(
            403,
            f"Only {holder.owner}, the owner of {name!r}, or an admin can change who may call it.",
        )
    wanted = sorted(set(groups))
    unknown = [g for g in wanted if g not in known]
    if unknown:
        raise RegistryError(
            400,
            f"predict_groups: no group named {', '.join(map(repr, unknown))} in the hub or the "
            f"platform config; groups: {', '.join(sorted(known)) or 'none'}",
            "predict_groups",
        )
    return wanted


def check_size(size: int | None, limit: int) -> None:
    if size is not None and size > limit:
        raise RegistryError(
            413,
            f"The upload is {size} bytes; this platform takes model packages of at most "
            f"{limit} bytes (models.max_upload_bytes).",
        )


def check_members(members: Iterable[Member], limit: int) -> list[str]:
    """The archive's member names, checked: regular files named ``model.yaml``,
    ``model.joblib`` or ``model.pkl`` at the top, each once, no links, absolute paths or
    ``..``, unpacking to at most ``limit`` bytes. RegistryError (400) names the first problem.
    """
    names: list[str] = []
    total = 0
    for m in members:
        raw = m.name
        if raw.startswith("/") or re.match(r"^[A-Za-z]:[\\/]", raw) or raw.startswith("\\"):
            raise RegistryError(400, f"the archive holds an absolute path {raw!r}", "archive")
        parts = raw.replace("\\", "/").split("/")
        if ".." in parts:
            raise RegistryError(400, f"the archive holds a path with '..': {raw!r}", "archive")
        name = member_name(raw)
        if m.kind == "dir" and name == ".":
            continue
        if m.kind in ("symlink", "hardlink"):
            raise RegistryError(
                400, f"the archive holds a link {raw!r}; send plain files", "archive"
            )
        if m.kind != "file":
            raise RegistryError(
                400, f"the archive holds {raw!r}, which is not a plain file", "archive"
            )
        if name not in MEMBERS:
            raise RegistryError(
                400,
                f"the archive holds {raw!r}; a model package has only "
                f"{', '.join(sorted(MEMBERS))} at its top level",
                "archive",
            )
        if name in names:
            raise RegistryError(400, f"the archive holds {name!r} twice", "archive")
        total += max(m.size, 0)
        if total > limit:
            check_size(total, limit)
        names.append(name)
    if CARD not in names:
        raise RegistryError(400, f"the archive has no {CARD}", "archive")
    if len(names) != 2:
        raise RegistryError(
            400, "the archive must hold model.yaml and one serialized model", "archive"
        )
    return names
