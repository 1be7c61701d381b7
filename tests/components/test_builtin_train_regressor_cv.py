from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.datasets import make_regression
from sklearn.linear_model import LinearRegression


def test_cv_scores_are_positive_errors_and_model_is_refit(component):
    X, y = make_regression(n_samples=200, n_features=5, noise=1.0, random_state=0)
    estimator = LinearRegression()
    result = component("train_regressor_cv")(X, y, estimator=estimator, cv=4)
    assert len(result["scores"]) == 4
    assert result["metric"] == "root_mean_squared_error" and result["greater_is_better"] is False
    assert 0.5 < result["mean"] < 2.0  # noise sd is 1: a linear fit's RMSE is about 1
    assert result["mean"] == pytest.approx(result["scores"].mean())
    assert np.abs(result["model"].predict(X) - y).mean() < 2
    assert not hasattr(estimator, "coef_")  # the caller's estimator stays unfitted


def test_r2_default_model_and_repeatable(component):
    train = component("train_regressor_cv")
    X, y = make_regression(n_samples=120, n_features=3, noise=5.0, random_state=1)
    frame = pd.DataFrame(X, columns=["a", "b", "c"])
    first = train(frame, y, cv=3, scoring="r2", random_state=7)
    assert first["metric"] == "r2" and first["greater_is_better"] is True
    assert first["mean"] > 0.6
    assert np.array_equal(
        first["scores"], train(frame, y, cv=3, scoring="r2", random_state=7)["scores"]
    )
    assert list(first["model"].feature_names_in_) == ["a", "b", "c"]


def test_groups_stay_in_one_fold(component):
    X, y = make_regression(n_samples=60, n_features=2, random_state=2)
    groups = np.repeat(np.arange(6), 10)
    result = component("train_regressor_cv")(
        X, y, estimator=LinearRegression(), cv=3, groups=groups
    )
    assert len(result["scores"]) == 3
    with pytest.raises(ValueError, match="groups has 2 distinct values, fewer than cv=3"):
        component("train_regressor_cv")(X, y, cv=3, groups=np.repeat([0, 1], 30))


def test_bad_arguments_are_named(component):
    train = component("train_regressor_cv")
    X = np.zeros((10, 2))
    with pytest.raises(ValueError, match="cv must be at least 2"):
        train(X, np.arange(10.0), cv=1)
    with pytest.raises(ValueError, match="y must be numeric"):
        train(X, np.array(["a"] * 10))
    with pytest.raises(ValueError, match="y has missing values"):
        train(X, np.r_[np.arange(9.0), np.nan])
    with pytest.raises(ValueError, match="X has 10 rows but y has 9"):
        train(X, np.arange(9.0))
    with pytest.raises(ValueError, match="'rmse' is not a scikit-learn scorer"):
        train(X, np.arange(10.0), scoring="rmse")


def test_classifier_is_refused(component):
    from sklearn.linear_model import LogisticRegression

    with pytest.raises(TypeError, match="use train_classifier_cv"):
        component("train_regressor_cv")(
            np.zeros((10, 1)), np.arange(10.0), estimator=LogisticRegression()
        )


def test_display_says_which_way_is_better(component):
    X, y = make_regression(n_samples=60, n_features=3, noise=1.0, random_state=5)
    result = component("train_regressor_cv")(X, y, estimator=LinearRegression(), cv=3)
    assert result.metric == "root_mean_squared_error" and result.model is result["model"]
    assert result.summary.splitlines()[0] == (
        f"root_mean_squared_error {result.mean:.3f} ± {result.std:.3f} over 3 folds"
        " (lower is better)"
    )
    assert "".join(f"<td>{s:.3f}</td>" for s in result.scores) in result._repr_html_()
