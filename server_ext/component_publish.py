"""Placeholder: filled in by the component-registry work (issue 8)."""

from __future__ import annotations

from typing import Any


def setup(app: Any) -> list[tuple[str, Any]]:
    return []
