"""Notebook shares, the rules: what a share request may say, who may share with whom, when a
share is live and who may read it. Pure: no I/O and no clock (``now`` is passed in); the
routes and the store are ``share_api.py``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

SHARE_ID = re.compile(r"[0-9a-f]{16}")
MODES = ("view", "copy")
ACTIONS = ("share", "update", "revoke", "open", "copy", "purge")  # purge: retention
MAX_MESSAGE = 2000
MAX_PATH = 1024
MAX_NAME = 255  # a hub user or group name (the hub's own column)


class ShareError(ValueError):
    """A request the rules refuse: ``status`` is what the route answers, ``field`` the key."""

    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field


@dataclass(frozen=True)
class Share:
    """One share as the rules see it (a row of ``shares`` with its recipients)."""

    id: str
    owner: str
    path: str
    mode: str
    message: str
    created_at: float
    updated_at: float
    version: int
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    expires_at: float | None = None
    revoked_at: float | None = None


@dataclass(frozen=True)
class Request:
    """A checked create/update body; ``None`` fields are left as they were by an update."""

    path: str | None = None
    mode: str | None = None
    message: str | None = None
    users: tuple[str, ...] | None = None
    groups: tuple[str, ...] | None = None
    expires_at: float | None = None
    expiry_given: bool = False  # "expires_at": null clears an expiry; absent keeps it
    notebook: str | None = None  # the snapshot's text, canonical JSON


# --- one request's fields -------------------------------------------------------------------


def check_path(path: Any) -> str:
    """Where the notebook is in the owner's workspace (a label: the service never reads it)."""
    if not isinstance(path, str) or not path or len(path) > MAX_PATH:
        raise ShareError(
            400, "path: the notebook's path in your workspace, e.g. 'a/b.ipynb'", "path"
        )
    segments = path.split("/")
    if (
        path.startswith("/")
        or re.match(r"[A-Za-z]:", path)
        or "\\" in path
        or "\x00" in path
        or any(s in ("", ".", "..") for s in segments)
    ):
        raise ShareError(400, f"path: {path!r} must be relative to your home, without '..'", "path")
    if not path.endswith(".ipynb"):
        raise ShareError(400, f"path: {path!r} is not a notebook (.ipynb)", "path")
    return path


def check_mode(mode: Any) -> str:
    if mode not in MODES:
        raise ShareError(
            400, "mode: 'view' (a read-only preview) or 'copy' (their own copy)", "mode"
        )
    return mode


def check_message(message: Any) -> str:
    if message is None:
        return ""
    if not isinstance(message, str) or len(message) > MAX_MESSAGE:
        raise ShareError(400, f"message: text of at most {MAX_MESSAGE} characters", "message")
    return message.strip()


def check_expiry(value: Any, now: float) -> float | None:
    """An ISO 8601 time with a zone (``2026-12-01T00:00:00Z``) in the future, or None."""
    if value is None:
        return None
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None or when.tzinfo is None:
        raise ShareError(
            400,
            "expires_at: a time with its zone, e.g. '2026-12-01T00:00:00Z', or null",
            "expires_at",
        )
    t = when.astimezone(UTC).timestamp()
    if t <= now:
        raise ShareError(400, "expires_at: must be in the future", "expires_at")
    return t


def _names(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(
        isinstance(x, str) and 0 < len(x.strip()) <= MAX_NAME for x in value
    ):
        raise ShareError(400, f"{key}: a list of hub {key[:-1]} names", key)
    out: list[str] = []
    for name in (x.strip() for x in value):
        if name not in out:
            out.append(name)
    return out


def check_recipients(
    users: Any, groups: Any, *, owner: str, max_recipients: int
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Deduplicated names; sharing with yourself is dropped, not refused. At least one
    recipient must remain."""
    u = [x for x in _names(users, "users") if x != owner]
    g = _names(groups, "groups")
    if len(u) + len(g) > max_recipients:
        raise ShareError(
            400, f"users, groups: at most {max_recipients} recipients per share", "users"
        )
    if not u and not g:
        raise ShareError(
            400, "users, groups: name at least one other user or group to share with", "users"
        )
    return tuple(u), tuple(g)


def check_notebook(nb: Any, max_bytes: int) -> str:
    """The snapshot's text (the notebook as nbformat writes it: indent 1, sorted keys).

    Only its shape is checked here; the store validates it against nbformat's schema.
    """
    if not isinstance(nb, dict):
        raise ShareError(400, "notebook: the notebook's JSON object", "notebook")
    if nb.get("nbformat") != 4 or not isinstance(nb.get("cells"), list):
        raise ShareError(
            400,
            "notebook: only nbformat 4 notebooks can be shared; save it in JupyterLab",
            "notebook",
        )
    text = json.dumps(nb, indent=1, sort_keys=True, ensure_ascii=False) + "\n"
    size = len(text.encode("utf-8"))
    if size > max_bytes:
        raise ShareError(
            413,
            f"The notebook is {size:,} bytes; notebooks up to {max_bytes:,} bytes can be shared. "
            "Clear large outputs (Edit > Clear Outputs) and share again.",
            "notebook",
        )
    return text


def check_create(
    body: Mapping[str, Any], *, owner: str, now: float, max_bytes: int, max_recipients: int
) -> Request:
    users, groups = check_recipients(
        body.get("users"), body.get("groups"), owner=owner, max_recipients=max_recipients
    )
    return Request(
        path=check_path(body.get("path")),
        mode=check_mode(body.get("mode", "view")),
        message=check_message(body.get("message")),
        users=users,
        groups=groups,
        expires_at=check_expiry(body.get("expires_at"), now),
        expiry_given=True,
        notebook=check_notebook(body.get("notebook"), max_bytes),
    )


def check_update(
    body: Mapping[str, Any], share: Share, *, now: float, max_bytes: int, max_recipients: int
) -> Request:
    """An update changes only what the body names; a ``notebook`` adds a snapshot version."""
    users = groups = None
    if "users" in body or "groups" in body:
        users, groups = check_recipients(
            body.get("users", list(share.users)),
            body.get("groups", list(share.groups)),
            owner=share.owner,
            max_recipients=max_recipients,
        )
    return Request(
        path=check_path(body["path"]) if "path" in body else None,
        mode=check_mode(body["mode"]) if "mode" in body else None,
        message=check_message(body["message"]) if "message" in body else None,
        users=users,
        groups=groups,
        expires_at=check_expiry(body.get("expires_at"), now) if "expires_at" in body else None,
        expiry_given="expires_at" in body,
        notebook=check_notebook(body["notebook"], max_bytes) if "notebook" in body else None,
    )


# --- whom an owner may name -----------------------------------------------------------------

# The config rules a refusal names, so the person refused knows it is policy, not a typo.
USERS_RULE = "sharing.users: same-group"
GROUPS_RULE = "sharing.groups: member"


def refused_recipients(
    users: Iterable[str],
    groups: Iterable[str],
    *,
    existing_users: Collection[str],
    existing_groups: Mapping[str, Collection[str]],
    owner_groups: Collection[str],
    owner_is_admin: bool,
    group_policy: str = "member",
    user_policy: str = "any",
) -> list[tuple[str, str]]:
    """The recipients this owner may not name: (field, a sentence naming it); empty: fine.

    The one rule for notebook shares and workspace shares (the server extension asks the
    service, which applies it). A group the owner may not see reads exactly like one that
    does not exist. ``existing_groups`` maps each group to its members (for the
    ``same-group`` user policy).
    """
    problems = []
    mine = set(owner_groups)
    peers = {m for g in mine for m in existing_groups.get(g, ())}
    for u in users:
        if u not in existing_users:
            problems.append(("users", f"No hub user is named {u!r}."))
        elif user_policy == "same-group" and not owner_is_admin and u not in peers:
            problems.append(
                (
                    "users",
                    f"{u!r} is in none of your groups; you can share with their members "
                    f"({USERS_RULE}).",
                )
            )
    own_only = not owner_is_admin and group_policy != "any"
    for g in groups:
        if g not in existing_groups or (own_only and g not in mine):
            yours = ", ".join(sorted(mine)) or "none"
            # the same words whether the group exists or not: no probing for names
            rule = f"; {GROUPS_RULE}: you share with your own groups" if own_only else ""
            problems.append(
                ("groups", f"No group named {g!r} that you can share with (yours: {yours}{rule}).")
            )
    return problems


def refusal_status(problems: Iterable[tuple[str, str]]) -> int:
    """403 when every refusal is the ``same-group`` rule about a user who exists (naming them
    tells nothing new: every user may list user names); 404 otherwise, since a group one may
    not see must read like one that does not exist."""
    found = list(problems)
    return 403 if found and all(USERS_RULE in message for _, message in found) else 404


# --- reading ----------------------------------------------------------------------------------


def is_live(share: Share, now: float) -> bool:
    """Neither revoked nor expired: a dead share answers 404 to everyone but its owner."""
    return share.revoked_at is None and (share.expires_at is None or share.expires_at > now)


def is_recipient(share: Share, user: str, groups: Iterable[str]) -> bool:
    return user in share.users or bool(set(share.groups) & set(groups))


def may_read(share: Share, user: str, groups: Iterable[str], now: float) -> bool:
    """The owner always (to see what they shared); a recipient while the share is live."""
    if user == share.owner:
        return True
    return is_live(share, now) and is_recipient(share, user, groups)


def may_copy(share: Share, user: str, groups: Iterable[str], now: float) -> bool:
    """A copy needs the ``copy`` mode (a ``view`` share is a preview only); owners may always."""
    if user == share.owner:
        return True
    return share.mode == "copy" and may_read(share, user, groups, now)


def status(share: Share, now: float) -> str:
    if share.revoked_at is not None:
        return "revoked"
    if share.expires_at is not None and share.expires_at <= now:
        return "expired"
    return "active"


def file_name(path: str) -> str:
    return path.rsplit("/", 1)[-1]


def as_json(share: Share, now: float, iso: Any, *, for_owner: bool) -> dict[str, Any]:
    """A share as the API shows it; recipients do not see who else received it."""
    out: dict[str, Any] = {
        "id": share.id,
        "owner": share.owner,
        "name": file_name(share.path),
        "mode": share.mode,
        "message": share.message,
        "version": share.version,
        "created_at": iso(share.created_at),
        "updated_at": iso(share.updated_at),
        "expires_at": iso(share.expires_at) if share.expires_at is not None else None,
    }
    if for_owner:
        out.update(
            path=share.path,
            users=list(share.users),
            groups=list(share.groups),
            status=status(share, now),
            revoked_at=iso(share.revoked_at) if share.revoked_at is not None else None,
        )
    return out
