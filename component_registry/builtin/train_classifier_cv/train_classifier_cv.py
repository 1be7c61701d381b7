"""Train a classifier with stratified k-fold cross-validation, then refit on all data."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.base import clone
from sklearn.ensemble import RandomForestClassifier
from sklearn.model_selection import StratifiedKFold, cross_validate


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
    ``{"model", "scores" (one per fold), "mean", "std", "scoring"}``.
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
    return {
        "model": model,
        "scores": scores,
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "scoring": scoring,
    }
