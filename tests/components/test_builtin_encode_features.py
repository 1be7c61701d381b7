from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.utils.validation import check_is_fitted


@pytest.fixture
def train() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    n = 400
    city = rng.integers(0, 40, n)
    age = rng.normal(40, 10, n)
    age[::10] = np.nan
    plan = rng.choice(["free", "pro", "team"], n, p=[0.5, 0.3, 0.2]).astype(object)
    plan[0] = "legacy"  # one row: rarer than min_frequency
    churned = ((city % 2 == 0) ^ (rng.random(n) < 0.1)).astype(int)  # city drives the label
    return pd.DataFrame(
        {
            "customer_id": [f"c{i:04d}" for i in range(n)],
            "age": age,
            "active": rng.random(n) < 0.5,
            "plan": plan,
            "city": [f"city-{c}" for c in city],
            "signup": pd.date_range("2026-01-01", periods=n, freq="D"),
            "churned": churned,
        }
    )


def test_roles_and_dropped_columns(component, train):
    enc = component("encode_features")(train, target="churned")
    assert enc["numeric"] == ["age", "active"]
    assert enc["categorical"] == ["plan"]
    assert enc["high_cardinality"] == ["city"]
    assert enc["dropped"]["customer_id"] == "every value unique (an identifier?)"
    assert enc["dropped"]["signup"].startswith("datetime")
    assert enc["dropped"]["churned"] == "target"
    assert enc["fitted"] is False and enc["feature_names"] is None
    with pytest.raises(NotFittedError):
        check_is_fitted(enc["transformer"])  # nothing learned from data that may hold test rows


def test_fitted_transform_handles_missing_rare_and_unseen_values(component, train):
    enc = component("encode_features")(train, target="churned", fit=True, min_frequency=5)
    names = enc["feature_names"]
    assert "numeric__missingindicator_age" in names
    assert (
        "categorical__plan_infrequent_sklearn" in names and "categorical__plan_legacy" not in names
    )
    assert "high_cardinality__city" in names
    out = enc["transformer"].transform(train)
    assert list(out.columns) == names and not out.isna().any().any()
    assert out["numeric__age"].mean() == pytest.approx(0, abs=1e-9)  # scaled on train
    new = train.head(2).copy()
    new["plan"] = ["enterprise", "pro"]  # never seen in training
    new["city"] = ["city-999", "city-3"]
    new.loc[new.index[0], "age"] = np.nan
    row = enc["transformer"].transform(new)
    assert row["categorical__plan_infrequent_sklearn"].tolist() == [1.0, 0.0]
    assert row["categorical__plan_pro"].tolist() == [0.0, 1.0]
    assert row["high_cardinality__city"].iloc[0] == -1  # unseen -> -1
    assert row["numeric__missingindicator_age"].iloc[0] > 0


def test_target_encoding_in_a_pipeline_learns_the_signal(component, train):
    X, y = train.drop(columns="churned"), train["churned"]
    enc = component("encode_features")(train, target="churned", high_cardinality_encoding="target")
    model = Pipeline([("features", enc["transformer"]), ("model", LogisticRegression())])
    scores = cross_val_score(model, X, y, cv=4, scoring="accuracy")
    assert scores.mean() > 0.8  # the city carries the label; without it ~0.5
    fitted = component("encode_features")(
        train, target="churned", high_cardinality_encoding="target", fit=True
    )
    assert "high_cardinality__city" in fitted["feature_names"]


def test_explicit_roles_dict_input_and_errors(component):
    encode = component("encode_features")
    data = {"a": np.array([1.0, 2.0, 3.0]), "b": np.array(["x", "y", "x"], dtype=object)}
    enc = encode(data, numeric=["a"], scale=None, output="numpy", fit=True)
    assert enc["dropped"] == {"b": "not listed in numeric, categorical or high_cardinality"}
    assert enc["transformer"].transform(pd.DataFrame(data)).tolist() == [[1.0], [2.0], [3.0]]
    with pytest.raises(KeyError, match=r"numeric: no columns \['z'\]"):
        encode(data, numeric=["z"])
    with pytest.raises(ValueError, match="more than one role: \\['a'\\]"):
        encode(data, numeric=["a"], categorical=["a"])
    with pytest.raises(ValueError, match="scale must be one of"):
        encode(data, scale="log")
    with pytest.raises(ValueError, match="target encoding needs y"):
        encode(data, high_cardinality=["b"], high_cardinality_encoding="target", fit=True)


def test_display_lists_each_encoding(component, train):
    result = component("encode_features")(train, target="churned")
    assert result.numeric == result["numeric"] and result.fitted is False
    html = result._repr_html_()
    for role in ("numeric", "categorical", "high_cardinality"):
        names = ", ".join(result[role]) if result[role] else "none"
        assert f"<th>{role}</th><td>{names}</td>" in html
    assert "churned (target)" in html
    assert "not fitted: put result.transformer first" in result.summary
