"""Placeholder: filled in by the notebook-history work (issue 7)."""

from __future__ import annotations

from typing import Any


def setup(app: Any) -> list[tuple[str, Any]]:
    return []
