"""The JSON bodies of the components REST API, built from a catalog.

Pure: no I/O (a component's README text is passed in) and no clock. The server extension's
handlers parse the request, call these and write the result; the JupyterLab panel reads it.
"""

from __future__ import annotations

import difflib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .catalog import Catalog, is_exact_ref
from .spec import STABILITIES, Component

MAX_LIMIT = 200
DEFAULT_LIMIT = 50


class BadRequest(ValueError):
    """A request parameter is unusable (400); the message starts with the parameter."""


class NotFound(LookupError):
    """No such component or version (404); the message lists what exists."""


@dataclass(frozen=True)
class SearchParams:
    q: str = ""
    category: str | None = None
    stability: str | None = None
    source: str | None = None
    limit: int = DEFAULT_LIMIT
    offset: int = 0


def _int(name: str, raw: str | None, default: int, low: int, high: int | None) -> int:
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(f"{name}: {raw[:40]!r} is not a whole number") from None
    if value < low or (high is not None and value > high):
        bound = f"between {low} and {high}" if high is not None else f"at least {low}"
        raise BadRequest(f"{name}: must be {bound}, got {value}")
    return value


def search_params(args: Mapping[str, str | None]) -> SearchParams:
    """Validate the query string of ``GET search`` (empty filters mean no filter)."""
    stability = args.get("stability") or None
    if stability is not None and stability not in STABILITIES:
        raise BadRequest(f"stability: {stability[:40]!r} is not one of {', '.join(STABILITIES)}")
    return SearchParams(
        q=(args.get("q") or "")[:200],
        category=args.get("category") or None,
        stability=stability,
        source=args.get("source") or None,
        limit=_int("limit", args.get("limit"), DEFAULT_LIMIT, 1, MAX_LIMIT),
        offset=_int("offset", args.get("offset"), 0, 0, None),
    )


def json_value(value: Any) -> Any:
    """`value` as strict JSON can carry it (YAML may give NaN, bytes or sets)."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value


def summary(catalog: Catalog, c: Component) -> dict[str, Any]:
    return {
        "name": c.name,
        "version": str(c.version),
        "ref": c.ref,
        "summary": c.summary,
        "categories": list(c.categories),
        "tags": list(c.tags),
        "stability": c.stability,
        "source": c.source,
        "source_kind": catalog.source_kind(c.source),
        "owners": list(c.owners),
        "versions": [str(v.version) for v in catalog.versions(c.name)],
        "last_verified": c.last_verified.isoformat(),
    }


def search_body(catalog: Catalog, p: SearchParams) -> dict[str, Any]:
    filters = {"category": p.category, "stability": p.stability, "source": p.source}
    hits = catalog.search(p.q, **filters)
    facets = catalog.facets(p.q, **filters)
    return {
        "total": len(hits),
        "results": [summary(catalog, h.component) for h in hits[p.offset : p.offset + p.limit]],
        "facets": {
            "categories": [{"name": n, "count": k} for n, k in facets["categories"]],
            "stabilities": [{"name": n, "count": k} for n, k in facets["stabilities"]],
            "sources": [
                {"name": n, "kind": catalog.source_kind(n), "count": k}
                for n, k in facets["sources"]
            ],
        },
    }


def _listing(names: list[str], wanted: str, most: int = 20) -> str:
    if len(names) <= most:
        return ", ".join(names) or "none"
    close = difflib.get_close_matches(wanted, names, n=5, cutoff=0.5)
    shown = close or names[:most]
    return f"{', '.join(shown)} and {len(names) - len(shown)} more"


def pick(catalog: Catalog, name: str, version: str | None = None) -> Component:
    """The version `version` of `name`, else the one a plain ``name`` reference picks (the
    latest stable), else the newest. NotFound lists the names or versions that exist."""
    versions = catalog.versions(name)
    if not versions:
        raise NotFound(
            f"No component named {name[:64]!r}. Components: {_listing(catalog.names(), name)}"
        )
    if version:
        for c in versions:
            if str(c.version) == version:
                return c
        available = ", ".join(str(c.version) for c in versions)
        raise NotFound(f"{name} has no version {version[:40]!r}. Versions: {available}")
    try:
        return catalog.resolve(name)
    except LookupError:
        return versions[0]


def detail(catalog: Catalog, c: Component, readme: str) -> dict[str, Any]:
    return {
        **summary(catalog, c),
        "description": c.description,
        "inputs": [
            {
                "name": p.name,
                "type": p.type,
                "description": p.description,
                "default": json_value(p.default) if p.has_default else None,
                "required": not p.has_default,
            }
            for p in c.inputs
        ],
        "outputs": [
            {"name": p.name, "type": p.type, "description": p.description} for p in c.outputs
        ],
        "requirements": list(c.requirements),
        "example": c.example,
        "readme": readme,
        "entry_point": c.entry_point,
        "history": [
            {
                "version": str(v.version),
                "stability": v.stability,
                "last_verified": v.last_verified.isoformat(),
                "source": v.source,
            }
            for v in catalog.versions(c.name)
        ],
    }


def exact_ref(catalog: Catalog, ref: str | None) -> Component:
    """The component an exact reference ``name@x.y.z`` names (BadRequest, NotFound)."""
    if not ref or not is_exact_ref(ref):
        raise BadRequest(f"ref: {str(ref)[:80]!r} is not an exact reference like name@1.2.3")
    name, _, version = (ref or "").strip().partition("@")
    return pick(catalog, name, version)


@dataclass(frozen=True)
class SourceState:
    """Where one configured source stands (see `sources_body`)."""

    name: str
    kind: str
    url: str = ""
    ref: str = ""
    status: str = "ok"  # ok | error | fetching | not-fetched
    fetched_at: str | None = None
    error: str | None = None


def sources_body(
    catalog: Catalog, states: Iterable[SourceState], config_problems: Iterable[str] = ()
) -> dict[str, Any]:
    counts = catalog.counts()
    return {
        "sources": [
            {
                "name": s.name,
                "kind": s.kind,
                "url": s.url,
                "ref": s.ref,
                "status": s.status,
                "fetched_at": s.fetched_at,
                "error": s.error,
                "count": counts.get(s.name, 0),
            }
            for s in states
        ],
        "errors": [
            *({"source": "", "file": "", "key": "sources", "message": m} for m in config_problems),
            *(
                {"source": p.source, "file": p.file, "key": p.key, "message": p.message}
                for p in catalog.problems()
            ),
        ],
    }
