"""Train a regressor with (group) k-fold cross-validation, then refit it on all the data."""

from __future__ import annotations

from typing import Any

import numpy as np
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, Table, number, score_summary
from sklearn.base import clone, is_classifier
from sklearn.ensemble import RandomForestRegressor
from sklearn.metrics import get_scorer_names
from sklearn.model_selection import GroupKFold, KFold, cross_validate


@expects(
    X="your feature table (a pandas DataFrame or 2-d array, one row per sample)",
    y="your numeric target (a 1-d array or Series, one value per row of X)",
    estimator="a scikit-learn regressor or pipeline, or None for a random forest",
    groups="one group id per row (e.g. a customer id), or None",
)
def train_regressor_cv(
    X: Any,
    y: Any,
    estimator: Any = None,
    cv: int = 5,
    scoring: str = "neg_root_mean_squared_error",
    groups: Any = None,
    random_state: int = 0,
) -> dict[str, Any]:
    """Cross-validate ``estimator`` on ``(X, y)`` and return it refitted on all rows.

    Folds are shuffled with ``random_state``; with ``groups`` (e.g. a customer id per row)
    ``GroupKFold`` keeps each group on one side, so the score is not flattered by rows of
    the same customer in train and test. The default estimator is a
    ``RandomForestRegressor(n_estimators=200)``; any scikit-learn regressor or pipeline
    works (it is cloned; the argument stays unfitted). ``scoring`` is a scikit-learn
    scorer name; for error scorers (``neg_...``) the scores are reported as positive errors
    under ``metric`` (e.g. ``root_mean_squared_error``), lower is better. Returns
    ``{"model", "scores" (per fold), "mean", "std", "metric", "greater_is_better",
    "scoring"}`` as a ``Result``: a dict that also reads as attributes (``result.model``)
    and shows the mean ± std over the folds in a notebook.
    """
    if cv < 2:
        raise ValueError(f"cv must be at least 2, got {cv}")
    if scoring not in get_scorer_names():
        raise ValueError(f"scoring {scoring!r} is not a scikit-learn scorer name")
    y_arr = np.asarray(y)
    if y_arr.ndim != 1:
        raise ValueError(f"y must be 1-d, got shape {y_arr.shape}")
    if len(y_arr) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y_arr)}")
    if y_arr.dtype.kind not in "iuf":
        raise ValueError(f"y must be numeric for regression, got dtype {y_arr.dtype}")
    if np.isnan(y_arr.astype(float)).any():
        raise ValueError("y has missing values; drop or impute those rows first")
    base = (
        estimator
        if estimator is not None
        else RandomForestRegressor(n_estimators=200, random_state=random_state)
    )
    if is_classifier(base) or not hasattr(base, "fit"):
        raise TypeError(
            f"estimator must be a scikit-learn regressor, got {type(base).__name__} "
            "(classifiers: use train_classifier_cv)"
        )
    if groups is not None:
        n_groups = len(np.unique(np.asarray(groups)))
        if n_groups < cv:
            raise ValueError(f"groups has {n_groups} distinct values, fewer than cv={cv}")
        folds: Any = GroupKFold(n_splits=cv)
    else:
        folds = KFold(n_splits=cv, shuffle=True, random_state=random_state)
    result = cross_validate(clone(base), X, y_arr, cv=folds, scoring=scoring, groups=groups)
    scores = np.asarray(result["test_score"], dtype=float)
    greater_is_better = not scoring.startswith("neg_")  # scikit-learn names errors neg_*
    metric = scoring
    if scoring.startswith("neg_"):
        scores, metric = -scores, scoring[len("neg_") :]
    model = clone(base).fit(X, y_arr)
    data = {
        "model": model,
        "scores": scores,
        "mean": float(scores.mean()),
        "std": float(scores.std()),
        "metric": metric,
        "greater_is_better": bool(greater_is_better),
        "scoring": scoring,
    }
    better = "higher" if greater_is_better else "lower"
    return Result(
        data,
        title=f"train_regressor_cv: {type(model).__name__}",
        summary=[
            f"{score_summary(metric, data['mean'], data['std'], cv)} ({better} is better)",
            f"Refitted on all {len(y_arr)} rows: result.model is ready to predict.",
        ],
        tables=[
            Table(
                f"{metric} per fold",
                [f"fold {k + 1}" for k in range(cv)],
                [[number(s) for s in scores]],
            )
        ],
    )
