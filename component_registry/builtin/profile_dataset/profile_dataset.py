"""Profile a dataset: per-column type, missing values, cardinality and summary statistics."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, Table


def _columns(data: Any, what: str = "data") -> dict[str, np.ndarray]:
    """A pandas DataFrame or a dict of columns -> ``{name: 1-d numpy array}``.

    Missing values become NaN in numeric columns and None in the others, whatever the pandas
    dtype (nullable ``Int64``, ``string``, ...). pandas is duck-typed, not imported.
    """
    if hasattr(data, "columns") and hasattr(data, "dtypes"):
        out: dict[str, np.ndarray] = {}
        for name in data.columns:
            s = data[name]
            arr = np.asarray(s)
            if arr.dtype.kind == "O":
                kind = getattr(s.dtype, "kind", "O")
                if kind in "iuf":
                    arr = s.to_numpy(dtype=float, na_value=np.nan)
                else:
                    arr = arr.copy()
                    arr[s.isna().to_numpy()] = None
            out[str(name)] = arr
        return out
    if not hasattr(data, "items"):
        raise TypeError(
            f"{what} must be a pandas DataFrame or a dict of columns, got {type(data).__name__}"
        )
    return {k: np.asarray(v) for k, v in data.items()}


def _missing_mask(values: np.ndarray) -> np.ndarray:
    if values.dtype.kind == "f":
        return np.isnan(values)
    if values.dtype.kind == "O":
        return np.array(
            [v is None or (isinstance(v, float) and np.isnan(v)) for v in values], dtype=bool
        )
    return np.zeros(len(values), dtype=bool)


def _top(stats: dict[str, Any]) -> str:
    if stats["kind"] == "numeric":
        return ""
    return ", ".join(f"{value} ({count})" for value, count in stats["top"])


@expects(data="your table (a pandas DataFrame or a dict of column name -> values)")
def profile_dataset(data: Any, top_k: int = 5, high_missing: float = 0.2) -> dict[str, Any]:
    """Summarise each column of ``data`` (a pandas DataFrame or ``{column: 1-d array-like}``).

    Returns ``{"rows": n, "columns": {name: stats}, "warnings": [...]}``. Numeric columns get
    mean, std, min, quartiles and max (over present values); other columns get their
    ``top_k`` most frequent values. Warnings flag columns missing more than ``high_missing``
    of their values, constant columns, and text columns where every value is unique (likely
    an identifier that should not be a feature). The dict is a ``Result``: keys also read as
    attributes, and a notebook shows one row per column and the warnings.
    """
    arrays = _columns(data)
    if not arrays:
        raise ValueError("data has no columns")
    lengths = {len(a) for a in arrays.values()}
    if len(lengths) != 1:
        raise ValueError(f"columns differ in length: { {k: len(a) for k, a in arrays.items()} }")
    (rows,) = lengths
    columns: dict[str, dict[str, Any]] = {}
    warnings: list[str] = []
    for name, values in arrays.items():
        missing = _missing_mask(values)
        present = values[~missing]
        stats: dict[str, Any] = {
            "dtype": str(values.dtype),
            "missing": int(missing.sum()),
            "missing_fraction": float(missing.mean()) if rows else 0.0,
            "unique": len(set(present.tolist())),
        }
        if values.dtype.kind in "iuf" and len(present):
            q = np.percentile(present.astype(float), [0, 25, 50, 75, 100])
            stats.update(
                kind="numeric",
                mean=float(present.mean()),
                std=float(present.std()),
                min=float(q[0]),
                q25=float(q[1]),
                median=float(q[2]),
                q75=float(q[3]),
                max=float(q[4]),
            )
        else:
            stats.update(
                kind="boolean" if values.dtype.kind == "b" else "categorical",
                top=Counter(present.tolist()).most_common(top_k),
            )
        if stats["missing_fraction"] > high_missing:
            warnings.append(f"{name}: {stats['missing_fraction']:.0%} missing")
        if stats["unique"] <= 1:
            warnings.append(f"{name}: constant")
        elif stats["kind"] == "categorical" and stats["unique"] == len(present) > 1:
            warnings.append(f"{name}: every value unique (an identifier?)")
        columns[name] = stats
    names = list(columns)
    return Result(
        {"rows": rows, "columns": columns, "warnings": warnings},
        title="profile_dataset",
        summary=[f"{rows} rows, {len(columns)} columns, {len(warnings)} warnings"],
        tables=[
            Table(
                "Columns",
                ["kind", "dtype", "missing", "unique", "mean", "std", "min", "max", "most common"],
                [
                    [
                        s["kind"],
                        s["dtype"],
                        f"{s['missing']} ({s['missing_fraction']:.0%})",
                        s["unique"],
                        *(s.get(k) for k in ("mean", "std", "min", "max")),
                        _top(s),
                    ]
                    for s in columns.values()
                ],
                index=names,
                corner="column",
            )
        ],
        notes=[f"Warning: {w}" for w in warnings],
    )
