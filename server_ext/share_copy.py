"""Notebook shares on the user's side, the rules: which notebook path may be shared, the name
a recipient's copy gets (never one that is taken), and the metadata that says where a copy
came from. Pure: the handlers in ``shares.py`` do the reading and writing.
"""

from __future__ import annotations

import copy
import re
from pathlib import PurePosixPath
from typing import Any

MAX_PATH = 1024
MAX_TRIES = 1000  # "q4 (shared by alice) 1000.ipynb": past this, something else is wrong
# characters a copy's name keeps from the owner's name and file name; the rest become "_"
_UNSAFE = re.compile(r"[^\w .,()+@-]", re.UNICODE)


class PathError(ValueError):
    """A path that cannot be used; ``status`` is what the handler answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def check_relative(path: Any, *, what: str, allow_hidden: bool, empty_ok: bool = False) -> str:
    """``path`` as segments under the contents root: no absolute paths, ``..``, backslashes,
    percent-encoding (a client that means ``%2F`` must not get ``/``) or NUL; hidden names
    only where the contents manager shows them. Returns it without surrounding slashes."""
    if path is None and empty_ok:
        return ""
    if not isinstance(path, str) or len(path) > MAX_PATH:
        raise PathError(400, f"path: the {what}, relative to your home folder")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise PathError(400, f"path: {path!r} is absolute; give it relative to your home folder")
    if "\\" in path or "\x00" in path or "%" in path:
        raise PathError(400, f"path: {path!r} has '\\', '%' or a NUL; use '/' between folders")
    trimmed = path.strip("/")
    if not trimmed:
        if empty_ok:
            return ""
        raise PathError(400, f"path: the {what}, relative to your home folder")
    for seg in trimmed.split("/"):
        if seg in ("", ".", ".."):
            raise PathError(400, f"path: {path!r} must not contain '..', '.' or '//'")
        if seg.startswith(".") and not allow_hidden:
            raise PathError(400, f"path: {path!r} is hidden")
    return trimmed


def check_notebook_path(path: Any, *, allow_hidden: bool) -> str:
    rel = check_relative(path, what="notebook to share", allow_hidden=allow_hidden)
    if not rel.endswith(".ipynb"):
        raise PathError(400, f"path: {rel!r} is not a notebook (.ipynb)")
    return rel


def _clean(text: str, limit: int) -> str:
    cleaned = _UNSAFE.sub("_", text).strip(" .") or "notebook"
    return cleaned[:limit]


def copy_names(shared_name: str, owner: str) -> list[str]:
    """The names a copy may take, in order: ``q4 (shared by alice).ipynb``, then ``... 2``;
    the writer creates the first that is free exclusively, so nothing is ever overwritten."""
    stem = _clean(PurePosixPath(shared_name).stem, 120)
    base = f"{stem} (shared by {_clean(owner, 60)})"
    return [f"{base}.ipynb"] + [f"{base} {n}.ipynb" for n in range(2, MAX_TRIES + 1)]


def with_copied_from(
    nb: dict[str, Any], *, share_id: str, owner: str, version: int, path: str, at: str
) -> dict[str, Any]:
    """The notebook with ``metadata.mlfactory.copied_from`` saying where it came from (the
    History panel's first version of the copy reads it). The input is not changed."""
    out = copy.copy(nb)
    meta = dict(out.get("metadata") or {})
    ours = dict(meta.get("mlfactory") or {}) if isinstance(meta.get("mlfactory"), dict) else {}
    ours["copied_from"] = {
        "share_id": share_id,
        "owner": owner,
        "version": version,
        "path": path,
        "at": at,
    }
    meta["mlfactory"] = ours
    out["metadata"] = meta
    return out
