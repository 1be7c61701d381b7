"""Randomized or grid hyperparameter search with cross-validation, refitting the best model."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from numbers import Real
from typing import Any

import numpy as np
import pandas as pd
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, Table, number
from sklearn.base import clone, is_classifier
from sklearn.metrics import get_scorer_names
from sklearn.model_selection import (
    GridSearchCV,
    GroupKFold,
    KFold,
    RandomizedSearchCV,
    StratifiedKFold,
)

METHODS = ("random", "grid")
_TOP = 5  # candidates shown in a notebook; result.results holds them all


def _check_space(estimator: Any, space: Any, method: str) -> list[dict[str, Any]]:
    grids = [space] if isinstance(space, Mapping) else list(space)
    if not grids or not all(isinstance(g, Mapping) and g for g in grids):
        raise ValueError("param_space must be a non-empty dict (or a list of dicts) of parameters")
    valid = set(estimator.get_params(deep=True))
    for grid in grids:
        for name, values in grid.items():
            if name not in valid:
                near = sorted(v for v in valid if v.split("__")[-1] == name.split("__")[-1])
                hint = f"; did you mean {', '.join(near)}?" if near else ""
                raise ValueError(
                    f"param_space: {type(estimator).__name__} has no parameter {name!r}{hint}"
                )
            is_dist = hasattr(values, "rvs")
            if is_dist and method == "grid":
                raise ValueError(
                    f"param_space[{name!r}]: grid search needs a list, not a distribution"
                )
            if not is_dist and (
                isinstance(values, str) or not isinstance(values, Sequence | np.ndarray)
            ):
                raise ValueError(
                    f"param_space[{name!r}] must be a list of values or a distribution"
                )
            if not is_dist and len(values) == 0:
                raise ValueError(f"param_space[{name!r}] is empty")
    return grids


@expects(
    estimator="the scikit-learn estimator or Pipeline to tune (e.g. RandomForestClassifier())",
    param_space='the settings to try, e.g. {"n_estimators": [100, 300], "max_depth": [4, 8]}',
    X="your training features (a pandas DataFrame or 2-d array, one row per sample)",
    y="your training target (a 1-d array or Series, one per row of X)",
    groups="one group id per row (e.g. a customer id), or None",
)
def hyperparameter_search(
    estimator: Any,
    param_space: dict[str, Any] | list[dict[str, Any]],
    X: Any,
    y: Any,
    method: str = "random",
    n_iter: int = 20,
    cv: int = 5,
    scoring: str | None = None,
    groups: Any = None,
    random_state: int = 0,
    n_jobs: int | None = None,
) -> dict[str, Any]:
    """Search ``param_space`` for the ``estimator`` settings with the best CV score.

    ``param_space`` maps parameter names (``model__C`` for a Pipeline step) to lists of
    values, or, for ``method="random"``, to scipy.stats distributions
    (``loguniform(1e-3, 1e2)``); a list of such dicts searches several sub-spaces.
    ``method="random"`` tries ``n_iter`` settings (all of them when the space is smaller);
    ``"grid"`` tries every combination. Folds are shuffled with ``random_state``, stratified
    for classifiers, and group-aware when ``groups`` is given. ``scoring`` is a
    scikit-learn scorer name (the estimator's ``score`` when None). Tune on training data
    only and report the tuned model on a held-out test set: the best CV score is
    optimistic, since it was picked among many.

    Returns ``{"best_params", "best_score", "results" (DataFrame, best first: one column per
    parameter, mean/std test score, rank, fit time), "model" (the best estimator refitted on
    all rows), "n_candidates"}`` as a ``Result``: keys also read as attributes, and a
    notebook shows the best score and settings and the top candidates.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
    if cv < 2:
        raise ValueError(f"cv must be at least 2, got {cv}")
    if n_iter < 1:
        raise ValueError(f"n_iter must be at least 1, got {n_iter}")
    if scoring is not None and scoring not in get_scorer_names():
        raise ValueError(f"scoring {scoring!r} is not a scikit-learn scorer name")
    if not hasattr(estimator, "get_params"):
        raise TypeError(
            f"estimator must be a scikit-learn estimator, got {type(estimator).__name__}"
        )
    grids = _check_space(estimator, param_space, method)
    if groups is not None:
        folds: Any = GroupKFold(n_splits=cv)
    elif is_classifier(estimator):
        folds = StratifiedKFold(n_splits=cv, shuffle=True, random_state=random_state)
    else:
        folds = KFold(n_splits=cv, shuffle=True, random_state=random_state)
    space = grids if len(grids) > 1 else grids[0]
    if method == "grid":
        search: Any = GridSearchCV(
            clone(estimator),
            space,
            scoring=scoring,
            cv=folds,
            n_jobs=n_jobs,
            refit=True,
            error_score="raise",
        )
    else:
        discrete = all(not hasattr(v, "rvs") for g in grids for v in g.values())
        if discrete:  # sampling more than the space holds would repeat settings
            size = sum(math.prod(len(v) for v in g.values()) for g in grids)
            n_iter = min(n_iter, size)
        search = RandomizedSearchCV(
            clone(estimator),
            space,
            n_iter=n_iter,
            scoring=scoring,
            cv=folds,
            n_jobs=n_jobs,
            refit=True,
            random_state=random_state,
            error_score="raise",
        )
    search.fit(X, y, groups=groups)
    cv_results = search.cv_results_
    params = pd.DataFrame(list(cv_results["params"]))
    results = pd.concat(
        [
            params,
            pd.DataFrame(
                {
                    "mean_test_score": cv_results["mean_test_score"],
                    "std_test_score": cv_results["std_test_score"],
                    "rank_test_score": cv_results["rank_test_score"],
                    "mean_fit_time": cv_results["mean_fit_time"],
                }
            ),
        ],
        axis=1,
    )
    results = results.sort_values(["rank_test_score", "mean_fit_time"], kind="stable")
    out = {
        "best_params": dict(search.best_params_),
        "best_score": float(search.best_score_),
        "results": results.reset_index(drop=True),
        "model": search.best_estimator_,
        "n_candidates": len(results),
        "scoring": scoring or "score",
    }
    top = out["results"].head(_TOP)
    best_std = float(cv_results["std_test_score"][search.best_index_])
    return Result(
        out,
        title=f"hyperparameter_search: {type(out['model']).__name__}",
        summary=[
            f"best {out['scoring']} {number(out['best_score'])} ± "
            f"{number(best_std)} over {cv} folds, "
            f"among {out['n_candidates']} candidates",
            "result.model is the best setting refitted on all rows.",
        ],
        tables=[
            Table(
                "Best settings",
                ["value"],
                [[repr(v)] for v in out["best_params"].values()],
                index=list(out["best_params"]),
                corner="parameter",
            ),
            Table(
                f"Top {len(top)} of {out['n_candidates']} candidates",
                list(top.columns),
                [
                    [v if isinstance(v, Real) else repr(v) for v in row]
                    for row in top.itertuples(index=False, name=None)
                ],
            ),
        ],
    )
