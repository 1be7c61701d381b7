"""Train a classifier with stratified k-fold cross-validation, then refit on all data."""

from __future__ import annotations

from typing import Any

import numpy as np
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, Table, number, score_summary
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedKFold, cross_validate


@expects(
    X="your feature table (a pandas DataFrame or 2-d array, one row per sample)",
    y="your class labels (a 1-d array or Series, one per row of X)",
    estimator="a scikit-learn classifier or pipeline, or None for a random forest",
)
def train_classifier_cv(
    X: Any,
    y: Any,
    estimator: Any = None,
    cv: int = 5,
    scoring: str = "f1_macro",
    random_state: int = 0,
) -> dict[str, Any]:
    """Cross-validate ``estimator`` on ``(X, y)`` and return it refitted on all rows.

    Folds are stratified and shuffled with ``random_state``. The default estimator is a
    ``RandomForestClassifier(n_estimators=200)``; pass any scikit-learn classifier or
    pipeline (it is cloned, so the argument itself stays unfitted). Returns
    ``{"model", "scores" (one per fold), "mean", "std", "scoring"}`` as a ``Result``: a dict
    that also reads as attributes (``result.model``) and shows "f1_macro 0.950 ± 0.031 over
    5 folds" with the per-fold scores in a notebook.
    """
    if cv < 2:
        raise ValueError(f"cv must be at least 2, got {cv}")
    base = (
        estimator
        if estimator is not None
        else RandomForestClassifier(n_estimators=200, random_state=random_state)
    )
    folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    result = cross_validate(clone(base), X, y, cv=folds, scoring=scoring)
    scores = np.asarray(result["test_score"], dtype=float)
    model = clone(base).fit(X, y)
    data = {
        "model": model,
        "scores": scores,
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "scoring": scoring,
    }
    return Result(
        data,
        title=f"train_classifier_cv: {type(model).__name__}",
        summary=[
            score_summary(scoring, data["mean"], data["std"], cv),
            f"Refitted on all {len(y)} rows: result.model is ready to predict.",
        ],
        tables=[
            Table(
                f"{scoring} per fold",
                [f"fold {k + 1}" for k in range(cv)],
                [[number(s) for s in scores]],
            )
        ],
    )
