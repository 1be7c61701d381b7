"""The words a person reads for git's facts: a name for a commit's author and a human
date for a version (pure). Hashes, e-mails and ISO times stay in the details views."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

# A no-reply address names a user, not a mailbox: ours ("<name>@users.noreply.mlfactory")
# and GitHub's ("12345+<login>@users.noreply.github.com").
_NOREPLY = re.compile(r"(?:\d+\+)?(?P<user>[^@]+)@users\.noreply\.[^@]+", re.IGNORECASE)
_ADDRESS = re.compile(r"[^@\s<>]+@[^@\s<>]+")


def is_noreply(email: str) -> bool:
    """Whether ``email`` is a no-reply address that stands for a user name."""
    return _NOREPLY.fullmatch(email.strip()) is not None


def display_name(author: str, email: str) -> str:
    """The name to show for a version's author: the author name git recorded, else the
    user a no-reply address stands for, else the mailbox's name; never a whole e-mail."""
    name = author.strip()
    if name and not _ADDRESS.fullmatch(name):
        return name
    address = email.strip() or name
    noreply = _NOREPLY.fullmatch(address)
    if noreply:
        return noreply["user"]
    if address:
        return address.split("@", 1)[0] or "Someone"
    return "Someone"


def human_date(iso: str) -> str:
    """``2026-12-06T14:05:09Z`` as "6 Dec 2026, 14:05 UTC" (a stored commit message
    cannot say "3 hours ago": it would be wrong tomorrow); other text is returned as is."""
    try:
        when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    except ValueError:
        return iso
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    when = when.astimezone(UTC)
    return f"{when.day} {when:%b %Y, %H:%M} UTC"


def quoted_message(message: str, limit: int = 60) -> str:
    """A version's message as a short quote: “first line” (shortened), or "" if none."""
    first = message.strip().splitlines()[0].strip() if message.strip() else ""
    if not first:
        return ""
    if len(first) > limit:
        first = first[: limit - 1].rstrip() + "…"
    return f"“{first}”"


def restore_message(message: str, iso: str) -> str:
    """The message of the version a restore makes: what came back, and when it was."""
    quote = quoted_message(message)
    what = f"Restored {quote}" if quote else "Restored a version"
    return f"{what} from {human_date(iso)}"


def before_restore_message(message: str, iso: str) -> str:
    """The automatic version that keeps the working copy before a restore replaces it."""
    quote = quoted_message(message)
    target = quote if quote else "a version"
    return f"Changes kept before restoring {target} from {human_date(iso)}"


AUTOMATIC_MESSAGE = "Automatic version"


def copy_message(copied_from: Any) -> str:
    """What a shared notebook's copy says it is, from ``metadata.mlfactory.copied_from``
    (written by the server's "Open copy"): “Copy of “q4.ipynb” shared by alice (version 2)”.
    "" when the metadata is missing or not what "Open copy" writes (a file can say anything)."""
    if not isinstance(copied_from, dict):
        return ""
    owner, path, version = (copied_from.get(k) for k in ("owner", "path", "version"))
    if not isinstance(owner, str) or not owner.strip():
        return ""
    name = path.rsplit("/", 1)[-1].strip() if isinstance(path, str) else ""
    what = f"Copy of “{name[:120]}”" if name else "Copy of a notebook"
    text = f"{what} shared by {owner.strip()[:120]}"
    if isinstance(version, int) and not isinstance(version, bool) and version > 0:
        text += f" (version {version})"
    return " ".join(text.split())  # one line, whatever the names held


def first_version_message(message: str, copied_from: Any) -> str:
    """The message of a notebook's first version: a copy says where it came from first,
    then the person's own words, if any."""
    origin = copy_message(copied_from)
    if not origin:
        return message
    own = message.strip()
    return origin if not own or own == AUTOMATIC_MESSAGE else f"{origin}\n\n{own}"
