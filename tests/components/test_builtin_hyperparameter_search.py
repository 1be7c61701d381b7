from __future__ import annotations

import pytest
from scipy.stats import loguniform
from sklearn.datasets import make_classification, make_regression
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier


def test_grid_search_finds_the_better_depth(component):
    X, y = make_classification(n_samples=300, n_features=8, n_informative=6, random_state=0)
    result = component("hyperparameter_search")(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 6]},
        X,
        y,
        method="grid",
        cv=3,
        scoring="accuracy",
    )
    assert result["best_params"] == {"max_depth": 6}  # a stump cannot use 6 informative features
    table = result["results"]
    assert list(table["max_depth"]) == [6, 1] and list(table["rank_test_score"]) == [1, 2]
    assert result["best_score"] == pytest.approx(table["mean_test_score"][0])
    assert result["n_candidates"] == 2 and result["model"].get_depth() <= 6
    assert result["model"].predict(X[:5]).shape == (5,)


def test_random_search_on_a_pipeline_with_a_distribution(component):
    X, y = make_regression(n_samples=120, n_features=5, noise=10, random_state=1)
    pipe = Pipeline([("scale", StandardScaler()), ("model", Ridge())])
    search = component("hyperparameter_search")
    first = search(
        pipe, {"model__alpha": loguniform(1e-3, 1e3)}, X, y, n_iter=6, cv=3, random_state=3
    )
    again = search(
        pipe, {"model__alpha": loguniform(1e-3, 1e3)}, X, y, n_iter=6, cv=3, random_state=3
    )
    assert first["n_candidates"] == 6 and first["best_params"] == again["best_params"]  # seeded
    assert first["scoring"] == "score" and 0 < first["best_score"] <= 1  # R² from Ridge.score
    assert first["results"]["mean_test_score"].is_monotonic_decreasing


def test_random_search_over_a_small_list_tries_each_once(component):
    X, y = make_classification(n_samples=80, n_features=4, random_state=2)
    result = component("hyperparameter_search")(
        LogisticRegression(max_iter=500), {"C": [0.1, 1.0, 10.0]}, X, y, n_iter=20, cv=3
    )
    assert result["n_candidates"] == 3 and sorted(result["results"]["C"]) == [0.1, 1.0, 10.0]


def test_bad_space_and_arguments_are_named(component):
    search = component("hyperparameter_search")
    X, y = make_classification(
        n_samples=40, n_features=3, n_informative=2, n_redundant=0, random_state=0
    )
    pipe = Pipeline([("model", LogisticRegression())])
    with pytest.raises(ValueError, match="no parameter 'C'; did you mean model__C"):
        search(pipe, {"C": [1.0]}, X, y)
    with pytest.raises(ValueError, match="grid search needs a list"):
        search(pipe, {"model__C": loguniform(1e-3, 1)}, X, y, method="grid")
    with pytest.raises(ValueError, match=r"param_space\['model__C'\] is empty"):
        search(pipe, {"model__C": []}, X, y)
    with pytest.raises(ValueError, match="method must be one of random, grid"):
        search(pipe, {"model__C": [1.0]}, X, y, method="bayes")
    with pytest.raises(ValueError, match="'auc' is not a scikit-learn scorer"):
        search(pipe, {"model__C": [1.0]}, X, y, scoring="auc")


def test_groups_keep_rows_of_a_group_together(component):
    import numpy as np

    X, y = make_regression(n_samples=60, n_features=3, noise=1, random_state=4)
    groups = np.repeat(np.arange(6), 10)
    result = component("hyperparameter_search")(
        Ridge(), {"alpha": [0.1, 10.0]}, X, y, method="grid", cv=3, groups=groups
    )
    assert result["n_candidates"] == 2 and result["best_params"] == {"alpha": 0.1}


def test_display_shows_the_best_setting_and_top_candidates(component):
    X, y = make_classification(n_samples=120, n_features=5, random_state=4)
    result = component("hyperparameter_search")(
        DecisionTreeClassifier(random_state=0),
        {"max_depth": [1, 2, 3, 4, 5, 6, 7]},
        X,
        y,
        method="grid",
        cv=3,
        scoring="accuracy",
    )
    assert result.best_params == result["best_params"]
    assert result.summary.startswith(f"best accuracy {result.best_score:.3f} ± ")
    assert "over 3 folds, among 7 candidates" in result.summary
    html = result._repr_html_()
    depth = result.best_params["max_depth"]
    assert f"<tr><th>max_depth</th><td>{depth}</td></tr>" in html
    assert "Top 5 of 7 candidates" in html and html.count("<tr>") == 1 + 1 + 1 + 5
