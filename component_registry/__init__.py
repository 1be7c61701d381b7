"""The component registry: tested, versioned best-practice components.

`spec` loads and validates one component folder against `schema/component.schema.json`;
`catalog` joins sources (the built-ins under `builtin/`, an organisation's directories),
resolves references (``name``, ``name@1.2``) and searches.
"""

from __future__ import annotations

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
    "default_catalog",
    "load_component",
]
