from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from mlfactory.model_api import ModelRepository, load_package
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler


@pytest.fixture
def data() -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(0)
    X = pd.DataFrame(
        {
            "tenure": rng.integers(1, 60, 200).astype(float),
            "spend": rng.normal(50, 10, 200),
            "plan": rng.choice(["free", "pro"], 200),
        }
    )
    y = pd.Series(np.where(X["tenure"] < 20, "churn", "stay"))
    return X, y


def test_package_a_pipeline_load_it_back_and_predict(component, data, tmp_path):
    X, y = data
    features = ColumnTransformer(
        [("num", StandardScaler(), ["tenure", "spend"]), ("cat", OneHotEncoder(), ["plan"])]
    )
    model = Pipeline([("features", features), ("model", LogisticRegression())]).fit(X, y)
    repo = tmp_path / "models"
    package = component("wrap_model_api")(
        model,
        "churn",
        repo,
        sample=X.head(20),
        metrics={"accuracy": 0.95},
        alias="staging",
        created_by="analyst",
    )
    assert package["version"] == 1 and package["path"] == str(repo.resolve() / "churn" / "1")
    sig = package["signature"]
    assert sig["task"] == "classification" and sig["labels"] == ["churn", "stay"]
    assert [(s["name"], s["datatype"]) for s in sig["inputs"]] == [
        ("tenure", "FP64"),
        ("spend", "FP64"),
        ("plan", "BYTES"),
    ]
    assert sig["outputs"][:3] == ["label", "score", "probabilities"]
    assert sig["request_schema"]["properties"]["records"]["items"]["required"] == [
        "tenure",
        "spend",
        "plan",
    ]
    card = yaml.safe_load((repo / "churn" / "1" / "model.yaml").read_text())
    assert card["metrics"] == {"accuracy": 0.95} and card["created_by"] == "analyst"

    # Load it back with the model_api library, as the model server does.
    loaded = ModelRepository(repo).load("churn", "staging")
    new = X.tail(30)
    prediction = loaded.predict(new)
    assert prediction.labels == model.predict(new).tolist()
    assert np.allclose(prediction.probabilities, model.predict_proba(new))
    again = load_package(package["path"], root=repo)
    assert again.predict(new.to_dict("series")).labels == prediction.labels


def test_regressor_on_arrays_gets_the_next_version(component, tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    model = LinearRegression().fit(X, X @ [1.0, 2.0, 3.0])
    wrap = component("wrap_model_api")
    first = wrap(model, "demand", tmp_path, sample=X[:5])
    second = wrap(model, "demand", tmp_path, input_schema=["a", "b", "c"])
    assert (first["version"], second["version"]) == (1, 2)
    assert first["signature"]["task"] == "regression"
    assert [s["name"] for s in first["signature"]["inputs"]] == ["x0", "x1", "x2"]
    assert [s["name"] for s in second["signature"]["inputs"]] == ["a", "b", "c"]
    loaded = ModelRepository(tmp_path).load("demand")  # no alias: the newest version
    assert np.allclose(loaded.predict(X[:4]).predictions, model.predict(X[:4]))


def test_binary_threshold_and_bad_name(component, data, tmp_path):
    X, y = data
    tenure = X[["tenure"]].to_numpy()
    model = LogisticRegression(C=0.001).fit(tenure, y)  # soft probabilities: 0.9 matters
    wrap = component("wrap_model_api")
    package = wrap(model, "churn-threshold", tmp_path, sample=tenure[:5], threshold=0.9)
    assert package["signature"]["decision_rule"] == "threshold"
    assert package["signature"]["threshold"] == 0.9
    loaded = ModelRepository(tmp_path).load("churn-threshold")
    proba = model.predict_proba(tenure[:40])[:, 1]
    expected = np.where(proba >= 0.9, "stay", "churn").tolist()
    assert expected != model.predict(tenure[:40]).tolist()  # the threshold, not argmax, decides
    assert loaded.predict(tenure[:40]).labels == expected
    with pytest.raises(ValueError, match="model name 'Churn Model'"):
        wrap(model, "Churn Model", tmp_path)
    with pytest.raises(TypeError, match="must have predict or be callable"):
        wrap(object(), "x", tmp_path)


class Forgetful(LinearRegression):
    """Saves a different intercept than it predicts with: its package cannot reproduce it."""

    def __getstate__(self):
        state = super().__getstate__()
        state["intercept_"] = state["intercept_"] + 100.0
        return state


def test_a_package_that_does_not_reproduce_is_never_published(component, tmp_path):
    X = np.arange(20, dtype=float).reshape(10, 2)
    model = Forgetful().fit(X, X.sum(axis=1))
    with pytest.raises(RuntimeError, match="does not reproduce the in-memory predictions"):
        component("wrap_model_api")(model, "forgetful", tmp_path / "models", sample=X)
    assert ModelRepository(tmp_path / "models").versions("forgetful") == []


def test_display_names_the_published_version_and_inputs(component, tmp_path):
    model = LinearRegression().fit(np.array([[0.0, 1.0], [1.0, 0.0], [2.0, 2.0]]), [1, 2, 3])
    package = component("wrap_model_api")(model, "demo", tmp_path)
    assert package.version == package["version"] and package.name == "demo"
    assert package.summary.splitlines()[0] == (
        f"Published demo version {package.version} to {package.path}"
    )
    html = package._repr_html_()
    names = [i["name"] for i in package.signature["inputs"]]
    assert all(f"<tr><th>{n}</th>" in html for n in names) and len(names) == 2
