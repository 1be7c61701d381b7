"""Helpers for the component tests: the built-in catalog and a way to call a component."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from mlfactory.components.catalog import BUILTIN, Catalog


@pytest.fixture(scope="session")
def builtin_catalog() -> Catalog:
    return Catalog.from_sources([BUILTIN])


@pytest.fixture
def component(builtin_catalog: Catalog) -> Callable[[str], Callable[..., Any]]:
    """component("name") -> the entry point of the latest stable (or only) built-in version."""

    def get(name: str) -> Callable[..., Any]:
        return builtin_catalog.versions(name)[0].load()

    return get
