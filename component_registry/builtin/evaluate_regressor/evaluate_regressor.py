"""Evaluate a regressor's predictions: MAE, RMSE, R², MAPE (zero-safe) and residuals."""

from __future__ import annotations

from typing import Any

import numpy as np
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, Table, number
from sklearn import metrics

_METRICS = ("mae", "rmse", "r2", "median_absolute_error", "max_error", "bias", "mape", "smape")


def _vector(values: Any, name: str) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-d, got shape {arr.shape}")
    if arr.dtype.kind not in "iufb":
        raise ValueError(f"{name} must be numeric, got dtype {arr.dtype}")
    arr = arr.astype(float)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has {int((~np.isfinite(arr)).sum())} missing or infinite values")
    return arr


@expects(
    y_true="the true numeric values (a 1-d array or Series, e.g. y_test)",
    y_pred="the predicted values for the same rows (e.g. model.predict(X_test))",
    sample_weight="one non-negative weight per row, or None",
)
def evaluate_regressor(
    y_true: Any, y_pred: Any, zero_tolerance: float = 1e-8, sample_weight: Any = None
) -> dict[str, Any]:
    """Compare numeric predictions with the truth.

    Returns ``n``, ``mae``, ``rmse``, ``r2``, ``median_absolute_error``, ``max_error``,
    ``bias`` (mean of ``y_pred - y_true``: positive means over-prediction), ``mape`` and
    ``residuals`` (``y_true - y_pred``: mean, std, min, q05, q25, median, q75, q95, max).

    MAPE divides by ``|y_true|``, so rows where it is at most ``zero_tolerance`` are left
    out of it (``mape_rows_excluded`` says how many); when every row is zero ``mape`` is
    None. ``smape`` (symmetric, 0-2 scale) is given for all rows where the truth or the
    prediction is non-zero. ``sample_weight`` weights MAE, RMSE, R² and MAPE. R² needs two
    rows or more (None otherwise, and when ``y_true`` is constant). The dict is a
    ``Result``: keys also read as attributes, and a notebook shows the metrics and the
    residual quantiles as tables.
    """
    t = _vector(y_true, "y_true")
    p = _vector(y_pred, "y_pred")
    if t.shape != p.shape:
        raise ValueError(f"y_true has {len(t)} values but y_pred has {len(p)}")
    if len(t) == 0:
        raise ValueError("y_true is empty")
    w = None
    if sample_weight is not None:
        w = _vector(sample_weight, "sample_weight")
        if w.shape != t.shape:
            raise ValueError(f"sample_weight has {len(w)} values, y_true has {len(t)}")
        if (w < 0).any() or w.sum() == 0:
            raise ValueError("sample_weight must be non-negative with a positive sum")
    residuals = t - p
    nonzero = np.abs(t) > zero_tolerance
    mape = None
    if nonzero.any():
        ape = np.abs(residuals[nonzero]) / np.abs(t[nonzero])
        mape = float(np.average(ape, weights=None if w is None else w[nonzero]))
    denom = np.abs(t) + np.abs(p)
    both = denom > zero_tolerance
    smape = float(np.mean(2 * np.abs(residuals[both]) / denom[both])) if both.any() else None
    r2 = None
    if len(t) >= 2 and np.ptp(t) > 0:
        r2 = float(metrics.r2_score(t, p, sample_weight=w))
    q = np.percentile(residuals, [5, 25, 50, 75, 95])
    out = {
        "n": len(t),
        "mae": float(metrics.mean_absolute_error(t, p, sample_weight=w)),
        "rmse": float(np.sqrt(metrics.mean_squared_error(t, p, sample_weight=w))),
        "r2": r2,
        "median_absolute_error": float(np.median(np.abs(residuals))),
        "max_error": float(np.max(np.abs(residuals))),
        "bias": float(np.average(p - t, weights=w)),
        "mape": mape,
        "mape_rows_excluded": int((~nonzero).sum()),
        "smape": smape,
        "residuals": {
            "mean": float(residuals.mean()),
            "std": float(residuals.std()),
            "min": float(residuals.min()),
            "q05": float(q[0]),
            "q25": float(q[1]),
            "median": float(q[2]),
            "q75": float(q[3]),
            "q95": float(q[4]),
            "max": float(residuals.max()),
        },
    }
    residual_stats = out["residuals"]
    return Result(
        out,
        title="evaluate_regressor",
        summary=[
            f"MAE {number(out['mae'])} · RMSE {number(out['rmse'])} · R² {number(out['r2'])}"
            f" on {out['n']} rows"
        ],
        tables=[
            Table("Metrics", ["value"], [[out[k]] for k in _METRICS], index=list(_METRICS)),
            Table(
                "Residuals (true - predicted)",
                list(residual_stats),
                [list(residual_stats.values())],
            ),
        ],
        notes=[f"MAPE leaves out {out['mape_rows_excluded']} rows where the truth is zero"]
        if out["mape_rows_excluded"]
        else [],
    )
