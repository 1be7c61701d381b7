"""The component registry: tested, versioned best-practice components.

`spec` loads and validates one component folder against `schema/component.schema.json`;
`catalog` joins sources (the built-ins under `builtin/`, an organisation's directories and
git checkouts from `sources`), resolves references (``name``, ``name@1.2``) and searches.
In a kernel, ``use("name@1.2.3")`` returns a component's function.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .catalog import BUILTIN, Catalog, SearchHit, Source, default_catalog
from .spec import Component, ComponentError, InvalidComponent, Port, Version, load_component

__all__ = [
    "BUILTIN",
    "Catalog",
    "Component",
    "ComponentError",
    "InvalidComponent",
    "Port",
    "SearchHit",
    "Source",
    "Version",
    "kernel_catalog",
    "default_catalog",
    "load_component",
    "use",
]

_lock = threading.Lock()
_cached: tuple[tuple[Any, ...], Catalog] | None = None
_loaded: dict[tuple[str, str], Callable[..., Any]] = {}  # (source file, version) -> function


def _kernel_sources() -> tuple[tuple[Any, ...], list[Source], Path]:
    """The sources this process's catalog joins after the built-ins, and a key that changes
    when they do: the server's manifest (what its catalog uses, published folders included)
    when there is one, else the sources in the environment and their cached checkouts."""
    from .sources import (
        MANIFEST,
        SOURCES_ENV,
        catalog_source,
        default_cache_dir,
        read_manifest,
        sources_from_env,
    )

    cache_dir = default_cache_dir()
    try:
        stamp: Any = (cache_dir / MANIFEST).stat().st_mtime_ns
    except OSError:
        stamp = None
    key = (str(cache_dir), stamp, os.environ.get(SOURCES_ENV, ""))
    found = read_manifest(cache_dir) if stamp is not None else None
    if found is None:
        specs, _ = sources_from_env()
        found = [s for s in (catalog_source(spec, cache_dir) for spec in specs) if s]
    return key, found, cache_dir


def kernel_catalog() -> Catalog:
    """This process's catalog, built once and rebuilt only when the server's manifest or
    ``MLFACTORY_COMPONENT_SOURCES`` changes."""
    global _cached
    with _lock:
        key, sources, cache_dir = _kernel_sources()
        if _cached is None or _cached[0] != key:
            _cached = (key, default_catalog(sources, cache_dir=cache_dir))
        return _cached[1]


def use(ref: str) -> Callable[..., Any]:
    """The function of the component `ref` names: ``name@1.2.3`` (what inserted cells use,
    so a notebook keeps running the version it was written with), ``name@1.2`` or ``name``
    (latest stable). Importing it runs the component's source file.

    Example: ``time_split = use("time_split@1.0.0")``
    """
    try:
        component = kernel_catalog().resolve(ref)
    except LookupError as e:
        raise LookupError(f"{e}. Browse the components panel for what exists.") from None
    key = (str(component.source_file), str(component.version))
    if key not in _loaded:  # a cell run twice gets the same function, imported once
        _loaded[key] = component.load()
    return _loaded[key]
