"""The platform config's quantities and the base of its models: sizes (``4Gi``), durations
(``30m``), slugs, and ``_Strict`` (unknown keys refused, frozen). Pure, shared by
``platform_schema`` and its sections in their own modules."""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

# Kubernetes-style quantities: what KubeSpawner and the local backend both take.
_SIZE_RE = re.compile(r"(?P<num>[0-9]+(?:\.[0-9]+)?)(?P<unit>Ki|Mi|Gi|Ti|Pi|K|M|G|T|P)?")
_UNITS = {
    None: 1,
    "K": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "P": 10**15,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
    "Pi": 2**50,
}
_SLUG_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
_DURATION_RE = re.compile(r"(?P<num>[0-9]+)(?P<unit>s|m|h|d)?")
_DURATION_UNITS = {None: 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_size(value: Any) -> int:
    """``'16Gi'`` → bytes. Plain integers are bytes. Raises ValueError with advice."""
    if isinstance(value, bool):
        raise ValueError(f"{value!r} is not a size; use e.g. '16Gi'")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"{value!r} is negative; use e.g. '16Gi'")
        return value
    if isinstance(value, str) and len(value) <= 32:
        m = _SIZE_RE.fullmatch(value.strip())
        if m:
            return int(float(m["num"]) * _UNITS[m["unit"]])
    shown = value if not isinstance(value, str) or len(value) <= 32 else value[:29] + "..."
    raise ValueError(f"{shown!r} is not a size; use e.g. '16Gi'")


def format_size(n_bytes: int) -> str:
    """Bytes → the shortest exact binary quantity (``2147483648`` → ``'2Gi'``)."""
    for unit in ("Pi", "Ti", "Gi", "Mi", "Ki"):
        if n_bytes and n_bytes % _UNITS[unit] == 0:
            return f"{n_bytes // _UNITS[unit]}{unit}"
    return str(n_bytes)


def parse_duration(value: Any) -> int:
    """``'90m'`` / ``'1h'`` / ``3600`` → seconds."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str):
        m = _DURATION_RE.fullmatch(value.strip())
        if m:
            return int(m["num"]) * _DURATION_UNITS[m["unit"]]
    raise ValueError(f"{value!r} is not a duration; use seconds or e.g. '30m', '2h', '1d'")


Size = Annotated[int, BeforeValidator(parse_size)]
Duration = Annotated[int, BeforeValidator(parse_duration)]


def _check_slug(value: str) -> str:
    if not _SLUG_RE.fullmatch(value):
        raise ValueError(
            f"{value!r} is not a valid slug; use 1-63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit"
        )
    return value


Slug = Annotated[str, BeforeValidator(lambda v: _check_slug(v) if isinstance(v, str) else v)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
