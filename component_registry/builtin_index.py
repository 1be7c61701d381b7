"""The built-ins' validated index, shipped in the package (``builtin/index.json``).

The built-ins are the same on every server, so validating them at each first start is
wasted work: the index holds each one as `scancache.to_json` writes it, with a hash of its
files' contents. A folder whose files no longer match (edited in place) is validated as any
other. Only the package's own folder is read this way: an index found in an organisation's
source is never trusted. Regenerate after changing a built-in, the schema or `spec.py`
(a test fails while the shipped file is out of date):

    .venv/bin/python -c "from mlfactory.components import builtin_index as b; b.write()"
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from . import scancache
from .spec import Component, InvalidComponent, load_component

BUILTIN_DIR = Path(__file__).parent / "builtin"
INDEX_NAME = "index.json"


def content_hash(listing: list[os.DirEntry[str]]) -> str | None:
    """A hash of the names and bytes of a folder's regular files (what validating it reads;
    sub-folders such as ``__pycache__`` are not), or None if one cannot be read."""
    h = hashlib.sha256()
    try:
        for entry in listing:
            if entry.is_file(follow_symlinks=False):
                with open(entry.path, "rb") as f:
                    data = f.read()
                h.update(orjson.dumps([entry.name, len(data)]))
                h.update(data)
    except OSError:
        return None
    return h.hexdigest()


def _listing(folder: Path) -> list[os.DirEntry[str]]:
    with os.scandir(folder) as entries:
        return sorted(entries, key=lambda e: e.name)


def build(root: Path) -> dict[str, Any]:
    """The index of the valid components in `root`'s folders (``<root>/<name>/``)."""
    entries: dict[str, Any] = {}
    for entry in _listing(root):
        folder = Path(entry.path)
        if not entry.is_dir(follow_symlinks=False) or not (folder / "component.yaml").is_file():
            continue
        try:
            component = load_component(folder)
        except InvalidComponent:
            continue  # left out: a scan validates it and reports its errors
        body = scancache.to_json(component)
        if body["doc_file"] is not None and "/" in body["doc_file"]:
            continue  # the hash covers the folder's own files only
        entries[entry.name] = {"hash": content_hash(_listing(folder)), "c": body}
    return {"key": scancache.code_key(), "entries": entries}


class ShippedIndex:
    """The index read from ``<root>/index.json``; `get` answers only for unchanged folders."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self._entries: dict[str, Any] = {}
        try:
            body = orjson.loads((root / INDEX_NAME).read_bytes())
            if body.get("key") == scancache.code_key():
                self._entries = body["entries"]
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            pass  # no index, or one from other code: every folder is validated

    def get(self, folder: Path, listing: list[os.DirEntry[str]], source: str) -> Component | None:
        entry = self._entries.get(folder.name) if folder.parent == self.root else None
        if entry is None or entry.get("hash") != content_hash(listing):
            return None
        try:
            return scancache.from_json(entry["c"], folder, source)
        except (KeyError, TypeError, ValueError):
            return None


def write(root: Path = BUILTIN_DIR) -> Path:
    path = root / INDEX_NAME
    path.write_bytes(orjson.dumps(build(root), option=orjson.OPT_INDENT_2) + b"\n")
    return path
