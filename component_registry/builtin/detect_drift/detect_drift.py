"""Detect distribution drift between a reference and a current dataset (KS test and PSI)."""

from __future__ import annotations

from typing import Any

import numpy as np
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, Table
from scipy import stats


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


def _psi(ref: np.ndarray, cur: np.ndarray, bins: int) -> float:
    # Bin edges from reference quantiles so each bin holds about the same reference share.
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    edges[0], edges[-1] = -np.inf, np.inf
    eps = 1e-6  # an empty bin would make the log infinite
    r = np.histogram(ref, edges)[0] / len(ref) + eps
    c = np.histogram(cur, edges)[0] / len(cur) + eps
    return float(np.sum((c - r) * np.log(c / r)))


def _psi_categorical(ref: np.ndarray, cur: np.ndarray) -> float:
    cats = sorted(set(ref.tolist()) | set(cur.tolist()), key=str)
    eps = 1e-6
    r = np.array([np.mean(ref == k) for k in cats]) + eps
    c = np.array([np.mean(cur == k) for k in cats]) + eps
    return float(np.sum((c - r) * np.log(c / r)))


@expects(
    reference="the data the model was trained on (a pandas DataFrame or dict of columns)",
    current="the recent data to compare (a pandas DataFrame or dict of columns)",
)
def detect_drift(
    reference: Any,
    current: Any,
    psi_threshold: float = 0.2,
    p_value: float = 0.01,
    bins: int = 10,
) -> dict[str, Any]:
    """Compare each column present in both datasets (DataFrames or ``{column: 1-d array}``).

    Numeric columns: two-sample Kolmogorov-Smirnov test and PSI over ``bins`` reference
    quantile bins; other columns: PSI over categories. A column drifts when PSI exceeds
    ``psi_threshold`` (0.1-0.2 is the usual "watch", above 0.2 "act") or, for numeric
    columns, the KS p-value is below ``p_value``. Missing values (NaN/None) are dropped.
    Returns ``{"columns": {name: {psi, ks_statistic, ks_p_value, drift}}, "drifted": [...]}``
    as a ``Result`` (keys also read as attributes) that a notebook shows as a table.
    """
    reference = _columns(reference, "reference")
    current = _columns(current, "current")
    common = [k for k in reference if k in current]
    if not common:
        raise ValueError("reference and current share no columns")
    columns: dict[str, dict[str, Any]] = {}
    for name in common:
        ref, cur = np.asarray(reference[name]), np.asarray(current[name])
        if ref.dtype.kind in "iuf" and cur.dtype.kind in "iuf":
            ref = ref[~np.isnan(ref.astype(float))].astype(float)
            cur = cur[~np.isnan(cur.astype(float))].astype(float)
            if not len(ref) or not len(cur):
                raise ValueError(f"column {name!r} has no values on one side")
            ks = stats.ks_2samp(ref, cur)
            psi = _psi(ref, cur, bins)
            entry = {
                "kind": "numeric",
                "psi": psi,
                "ks_statistic": float(ks.statistic),
                "ks_p_value": float(ks.pvalue),
                "drift": psi > psi_threshold or float(ks.pvalue) < p_value,
            }
        else:
            ref = np.array([v for v in ref.tolist() if v is not None], dtype=object)
            cur = np.array([v for v in cur.tolist() if v is not None], dtype=object)
            if not len(ref) or not len(cur):
                raise ValueError(f"column {name!r} has no values on one side")
            psi = _psi_categorical(ref, cur)
            entry = {"kind": "categorical", "psi": psi, "drift": psi > psi_threshold}
        columns[name] = entry
    drifted = [k for k, v in columns.items() if v["drift"]]
    summary = f"{len(drifted)} of {len(columns)} columns drifted"
    return Result(
        {"columns": columns, "drifted": drifted},
        title="detect_drift",
        summary=[summary + (f": {', '.join(map(str, drifted))}" if drifted else "")],
        tables=[
            Table(
                f"Per column (drift: PSI > {psi_threshold} or KS p-value < {p_value})",
                ["kind", "PSI", "KS statistic", "KS p-value", "drift"],
                [
                    [
                        v["kind"],
                        v["psi"],
                        v.get("ks_statistic"),
                        v.get("ks_p_value"),
                        "yes" if v["drift"] else "no",
                    ]
                    for v in columns.values()
                ],
                index=list(columns),
                corner="column",
            )
        ],
    )
