"""What the history API accepts from a request: workspace paths, version ids, messages,
remote URLs and credentials. Everything here refuses rather than repairs, and raises
``Refused`` (a ``ValueError``) with a message a person can act on.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

MAX_MESSAGE = 4000
MAX_PATH = 1024
WORKING = "working"

_SHA = re.compile(r"[0-9a-f]{4,64}")
# encoded separators and dots: tornado decoded the query once, a second layer is an attack
_ENCODED = re.compile(r"%(2f|5c|2e|00)", re.IGNORECASE)
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?(?::[0-9]{1,5})?"
_HTTPS = re.compile(rf"https://(?P<host>{_HOST})(?P<path>/[A-Za-z0-9._~/-]*)")
_SSH = re.compile(rf"ssh://(?:[A-Za-z0-9._-]+@)?(?P<host>{_HOST})(?P<path>/[A-Za-z0-9._~/-]*)")
_SCP = re.compile(
    r"[A-Za-z0-9._-]+@(?P<host>[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?):"
    r"(?P<path>[A-Za-z0-9._~][A-Za-z0-9._~/-]*)"
)


class Refused(ValueError):
    """A request value that the history API will not act on."""


def notebook_path(root: str | os.PathLike[str], api_path: str, *, notebook: bool = True) -> str:
    """The workspace-relative POSIX path of ``api_path``, once it is known to stay inside.

    Refuses absolute paths, ``..``, ``.git``, backslashes, encoded separators, control
    characters, names starting with ``-`` and, after resolving symlinks, anything that
    lands outside ``root`` (compared by path components, so ``/root-evil`` is not inside
    ``/root``). With ``notebook`` the name must end in ``.ipynb``.
    """
    if not isinstance(api_path, str) or not api_path:
        raise Refused("Give the notebook's path relative to the workspace, e.g. 'analysis.ipynb'.")
    if (
        len(api_path) > MAX_PATH
        or _CONTROL.search(api_path)
        or any(c in api_path for c in "\\\n\t")
    ):
        raise Refused("That path contains characters the history does not accept.")
    if _ENCODED.search(api_path):
        raise Refused("Encoded separators (%2F, %5C, %2E) are not accepted in paths.")
    if api_path.startswith("/") or re.match(r"[A-Za-z]:", api_path):
        raise Refused("Paths are relative to the workspace; absolute paths are refused.")
    parts = api_path.split("/")
    for part in parts:
        if part in ("", ".", ".."):
            raise Refused(f"The path {api_path!r} has an empty, '.' or '..' segment.")
        if part.startswith("-"):
            raise Refused(f"The path {api_path!r} has a name starting with '-'.")
        if part.lower() == ".git":
            raise Refused("Paths inside .git are not part of the history.")
    if notebook and not api_path.endswith(".ipynb"):
        raise Refused(f"{api_path!r} is not a notebook (.ipynb).")
    inside(root, api_path)
    return "/".join(parts)


def inside(root: str | os.PathLike[str], rel: str) -> Path:
    """``root/rel`` with symlinks resolved, refused unless it is still under ``root``."""
    real_root = Path(os.path.realpath(root))
    target = Path(os.path.realpath(real_root / rel))
    if target != real_root and not target.is_relative_to(real_root):
        raise Refused(f"{rel!r} leads outside the workspace.")
    if ".git" in (part.lower() for part in target.relative_to(real_root).parts):
        raise Refused(f"{rel!r} leads into the repository's own .git folder.")
    return target


def hidden(rel: str) -> bool:
    """Whether a repository path has a hidden part (``.ipython/...``, ``.bashrc``) other
    than the two files the history itself keeps (``.gitignore``, ``.gitattributes``)."""
    parts = rel.split("/")
    if parts[-1] in (".gitignore", ".gitattributes"):
        parts = parts[:-1]
    return any(part.startswith(".") for part in parts)


def version_id(value: str | None, *, allow_working: bool = False) -> str:
    """A hex commit id (4–64 digits), or "working" where the working copy is meant."""
    if allow_working and value == WORKING:
        return value
    if not isinstance(value, str) or not _SHA.fullmatch(value):
        raise Refused(
            "A version is the hexadecimal id shown in the history"
            + (', or "working" for the file as it is now.' if allow_working else ".")
        )
    return value


def message(value: object) -> str:
    """A version message: text, 1–4000 characters, no NUL or control characters but
    newlines and tabs."""
    if not isinstance(value, str) or not value.strip():
        raise Refused("Describe this version in a short message.")
    if len(value) > MAX_MESSAGE:
        raise Refused(f"The message is {len(value)} characters; keep it under {MAX_MESSAGE}.")
    if _CONTROL.search(value):
        raise Refused("The message contains control characters (NUL and the like).")
    return value.strip()


def remote_url(value: object, *, allow_local: bool = False) -> str:
    """An ``https://``, ``ssh://`` or ``user@host:path`` remote; with ``allow_local`` (tests
    only) also ``file://`` URLs and absolute local paths.

    No user or token inside https URLs (credentials are stored apart), no ``ext::`` or
    other transports, nothing that git could read as an option.
    """
    if not isinstance(value, str) or not value:
        raise Refused("Give the remote repository's URL, e.g. https://github.com/you/project.git")
    if value.startswith("-") or _CONTROL.search(value) or any(c.isspace() for c in value):
        raise Refused("That remote URL contains characters git would misread.")
    if "::" in value:
        raise Refused("Remote helpers such as ext:: are refused; use https:// or ssh://.")
    if value.startswith("https://"):
        if "@" in value.split("/", 3)[2]:
            raise Refused(
                "Do not put a user name or token in the URL; give them as username and token."
            )
        match = _HTTPS.fullmatch(value)
    elif value.startswith("ssh://"):
        match = _SSH.fullmatch(value)
    elif allow_local and (value.startswith("file:///") or value.startswith("/")):
        if ".." in value.split("/"):
            raise Refused("Local remotes must not contain '..'.")
        return value
    else:
        match = _SCP.fullmatch(value)
    if match is None or match.group("path").startswith("-"):
        raise Refused(
            "Only https://host/path, ssh://host/path and user@host:path remotes are accepted."
        )
    return value


def credential(value: object, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise Refused(f"Give the {what}.")
    if len(value) > 4096 or _CONTROL.search(value) or "\n" in value or "\r" in value:
        raise Refused(f"The {what} contains characters that cannot be sent to git.")
    return value
