"""Permutation feature importance: how much a model's held-out score drops when one feature's
values are shuffled, as a sorted table."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from mlfactory.components.placeholders import expects
from sklearn.inspection import permutation_importance
from sklearn.metrics import get_scorer, get_scorer_names


@expects(
    model="your fitted model or pipeline (e.g. result.model)",
    X="your held-out feature table (a pandas DataFrame or 2-d array, e.g. X_test)",
    y="the held-out target for the same rows (e.g. y_test)",
)
def explain_permutation_importance(
    model: Any,
    X: Any,
    y: Any,
    scoring: str | None = None,
    n_repeats: int = 10,
    feature_names: list[str] | None = None,
    max_samples: float | int = 1.0,
    random_state: int = 0,
    n_jobs: int | None = None,
) -> pd.DataFrame:
    """Rank features by how much shuffling them hurts the fitted ``model``'s score on ``(X, y)``.

    Use held-out data: on training rows the table shows what the model memorised, not what
    generalises. Each feature is shuffled ``n_repeats`` times (seeded by ``random_state``);
    ``scoring`` is a scikit-learn scorer name (the model's ``score`` when None). With a
    Pipeline the importances are for the raw input columns, before encoding. Correlated
    features share importance: shuffling one leaves the other to carry the signal, so both
    may look unimportant. ``max_samples`` (share or count of rows) speeds up large sets.

    Returns a DataFrame sorted by importance: ``feature``, ``importance_mean``,
    ``importance_std``, ``rank`` (1 = most important) and ``baseline_score`` in ``.attrs``.
    """
    if not hasattr(model, "predict"):
        raise TypeError(
            f"model must be a fitted estimator with predict, got {type(model).__name__}"
        )
    if n_repeats < 1:
        raise ValueError(f"n_repeats must be at least 1, got {n_repeats}")
    if scoring is not None and scoring not in get_scorer_names():
        raise ValueError(f"scoring {scoring!r} is not a scikit-learn scorer name")
    if len(X) != len(y):
        raise ValueError(f"X has {len(X)} rows but y has {len(y)}")
    if isinstance(X, pd.DataFrame):
        names = [str(c) for c in X.columns]
        if feature_names is not None and list(feature_names) != names:
            raise ValueError("feature_names is for arrays; a DataFrame's columns name its features")
    else:
        X = np.asarray(X)
        if X.ndim != 2:
            raise ValueError(f"X must be 2-d (rows x features), got shape {X.shape}")
        names = (
            list(feature_names)
            if feature_names is not None
            else [f"x{i}" for i in range(X.shape[1])]
        )
        if len(names) != X.shape[1]:
            raise ValueError(f"feature_names has {len(names)} names for {X.shape[1]} columns")
    result = permutation_importance(
        model,
        X,
        y,
        scoring=scoring,
        n_repeats=n_repeats,
        random_state=random_state,
        n_jobs=n_jobs,
        max_samples=max_samples,
    )
    table = pd.DataFrame(
        {
            "feature": names,
            "importance_mean": result.importances_mean,
            "importance_std": result.importances_std,
        }
    )
    table = table.sort_values(
        ["importance_mean", "feature"], ascending=[False, True], kind="stable"
    )
    table = table.reset_index(drop=True)
    table["rank"] = np.arange(1, len(table) + 1)
    baseline = model.score(X, y) if scoring is None else get_scorer(scoring)(model, X, y)
    table.attrs["baseline_score"] = float(baseline)
    table.attrs["scoring"] = scoring or "score"
    return table
