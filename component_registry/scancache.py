"""A scan cache: validated components kept on disk, one JSON file per source, reused while
a component folder's files are unchanged (same names, sizes and modification times).

Validating 1,000 components (YAML, JSON Schema, parsing the source) takes a few hundred
milliseconds; re-reading them from here is several times faster, so a restarted server (or a
new kernel) lists the catalog at once. A first scan writes its cache after the catalog is in
use (`unsaved` in `catalog.scan`). Entries are JSON, never pickles, and a cache written by
another version of the schema or loader is ignored.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import os
from pathlib import Path
from typing import Any

import orjson

from . import spec
from .spec import Component, ComponentError, Port, Version

Signature = list[list[Any]]
_Result = tuple[Path, Signature, "Component | None", "list[ComponentError]"]


@functools.cache
def code_key() -> str:
    """What validated entries depend on besides the folder: the schema and the loader."""
    h = hashlib.sha256()
    for path in (spec.SCHEMA_PATH, Path(spec.__file__)):
        h.update(path.read_bytes())
    return h.hexdigest()[:16]


def signature(listing: list[os.DirEntry[str]]) -> Signature | None:
    """What a folder's validation depends on: each entry's name, size and mtime."""
    try:
        return [[e.name, *_stat(e)] for e in listing]
    except OSError:
        return None


def _stat(entry: os.DirEntry[str]) -> list[int]:
    st = entry.stat(follow_symlinks=False)
    return [st.st_size, st.st_mtime_ns]


def _port(p: Port) -> dict[str, Any]:
    return {
        "name": p.name,
        "type": p.type,
        "description": p.description,
        "has_default": p.has_default,
        "default": p.default,
        "choices": list(p.choices),
    }


def to_json(c: Component) -> dict[str, Any]:
    return {
        "name": c.name,
        "version": str(c.version),
        "summary": c.summary,
        "description": c.description,
        "categories": list(c.categories),
        "tags": list(c.tags),
        "stability": c.stability,
        "owners": list(c.owners),
        "inputs": [_port(p) for p in c.inputs],
        "outputs": [_port(p) for p in c.outputs],
        "requirements": list(c.requirements),
        "example": c.example,
        "last_verified": c.last_verified.isoformat(),
        "source_file": c.source_file.name,
        "entry_point": c.entry_point,
        "doc_file": str(c.doc_file.relative_to(c.folder)) if c.doc_file else None,
    }


def from_json(d: dict[str, Any], folder: Path, source: str) -> Component:
    def ports(items: list[dict[str, Any]]) -> tuple[Port, ...]:
        return tuple(Port(**{**p, "choices": tuple(p["choices"])}) for p in items)

    return Component(
        name=d["name"],
        version=Version.parse(d["version"]),
        summary=d["summary"],
        description=d["description"],
        categories=tuple(d["categories"]),
        tags=tuple(d["tags"]),
        stability=d["stability"],
        owners=tuple(d["owners"]),
        inputs=ports(d["inputs"]),
        outputs=ports(d["outputs"]),
        requirements=tuple(d["requirements"]),
        example=d["example"],
        last_verified=dt.date.fromisoformat(d["last_verified"]),
        folder=folder,
        source_file=folder / d["source_file"],
        entry_point=d["entry_point"],
        doc_file=folder / d["doc_file"] if d["doc_file"] else None,
        source=source,
    )


class ScanCache:
    """The cache of one source's root; `get`/`put` by component folder, then `save`."""

    def __init__(self, path: Path, root: Path) -> None:
        self.path = path
        self.root = root
        self._old: dict[str, Any] = {}
        self._new: dict[str, Any] = {}
        self._unsaved: dict[str, _Result] = {}
        try:
            body = orjson.loads(path.read_bytes())
            if body.get("key") == code_key() and body.get("root") == str(root):
                self._old = body["entries"]
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            pass

    def _rel(self, folder: Path) -> str:
        return folder.relative_to(self.root).as_posix()

    def get(
        self, folder: Path, source: str, sig: Signature | None
    ) -> tuple[Component | None, list[ComponentError]] | None:
        """The cached result for `folder` if its files still have signature `sig` (taken
        before reading them), else None."""
        entry = self._old.get(self._rel(folder))
        if entry is None or sig is None or entry["sig"] != sig:
            return None
        try:
            component = from_json(entry["c"], folder, source) if entry["c"] else None
            errors = [ComponentError(str(folder / f), k, m) for f, k, m in entry["errors"]]
        except (KeyError, TypeError, ValueError):
            return None
        self._new[self._rel(folder)] = entry
        return component, errors

    def put(
        self,
        folder: Path,
        sig: Signature | None,
        component: Component | None,
        errors: list[ComponentError],
    ) -> None:
        """Remember a folder's result; it is turned into JSON by `save`, off the path of
        the first list."""
        if sig is not None:
            self._unsaved[self._rel(folder)] = (folder, sig, component, errors)

    @staticmethod
    def _entry(
        folder: Path, sig: Signature, component: Component | None, errors: list[ComponentError]
    ) -> dict[str, Any] | None:
        entry = {
            "sig": sig,
            "c": to_json(component) if component else None,
            "errors": [[Path(e.file).relative_to(folder).as_posix(), e.key, e.message]
                       for e in errors],
        }  # fmt: skip
        try:
            if orjson.loads(orjson.dumps(entry)) != entry:
                return None  # a default JSON cannot hold (NaN, a tuple): validated next time
        except (TypeError, orjson.JSONEncodeError):
            return None  # nor bytes or a set
        return entry

    def save(self) -> None:
        """Write what this scan saw (folders gone since are dropped), atomically."""
        for rel, (folder, sig, component, errors) in self._unsaved.items():
            entry = self._entry(folder, sig, component, errors)
            if entry is not None:
                self._new[rel] = entry
        self._unsaved.clear()
        if self._new == self._old:
            return
        body = {"key": code_key(), "root": str(self.root), "entries": self._new}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
            tmp.write_bytes(orjson.dumps(body))
            os.replace(tmp, self.path)
        except OSError:
            pass  # a cache that cannot be written only costs time


def cache_file(cache_dir: Path, source_name: str) -> Path:
    # a dot keeps it apart from the checkouts, which are named after sources (slugs)
    return cache_dir / ".scan" / f"{source_name}.json"
