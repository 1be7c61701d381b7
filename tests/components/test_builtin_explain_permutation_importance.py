from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "strong": rng.normal(size=400),
            "weak": rng.normal(size=400),
            "noise": rng.normal(size=400),
        }
    )
    y = 5 * X["strong"] + 1 * X["weak"] + rng.normal(scale=0.1, size=400)
    return X, y


def test_features_are_ranked_by_their_effect(component, data):
    X, y = data
    model = LinearRegression().fit(X[:300], y[:300])
    table = component("explain_permutation_importance")(model, X[300:], y[300:], n_repeats=5)
    assert table["feature"].tolist() == ["strong", "weak", "noise"]
    assert table["rank"].tolist() == [1, 2, 3]
    assert table["importance_mean"][0] > 1.0  # R² falls from ~1 to below 0 without "strong"
    assert abs(table["importance_mean"][2]) < 0.01 and (table["importance_std"] >= 0).all()
    assert table.attrs["baseline_score"] > 0.99 and table.attrs["scoring"] == "score"
    again = component("explain_permutation_importance")(model, X[300:], y[300:], n_repeats=5)
    assert again.equals(table)  # seeded


def test_arrays_with_names_and_a_scorer(component):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 2))
    y = (X[:, 1] > 0).astype(int)
    model = LogisticRegression().fit(X, y)
    table = component("explain_permutation_importance")(
        model, X, y, scoring="accuracy", feature_names=["a", "b"], n_repeats=3
    )
    assert table["feature"].tolist() == ["b", "a"]
    assert table["importance_mean"][0] > 0.3 and table.attrs["scoring"] == "accuracy"
    unnamed = component("explain_permutation_importance")(model, X, y, n_repeats=2)
    assert set(unnamed["feature"]) == {"x0", "x1"}


def test_bad_arguments_are_named(component, data):
    X, y = data
    model = LinearRegression().fit(X, y)
    explain = component("explain_permutation_importance")
    with pytest.raises(ValueError, match="feature_names has 1 names for 3 columns"):
        explain(model, X.to_numpy(), y, feature_names=["a"])
    with pytest.raises(ValueError, match="X has 400 rows but y has 10"):
        explain(model, X, y[:10])
    with pytest.raises(ValueError, match="'r2_score' is not a scikit-learn scorer"):
        explain(model, X, y, scoring="r2_score")
    with pytest.raises(TypeError, match="fitted estimator with predict"):
        explain(object(), X, y)
