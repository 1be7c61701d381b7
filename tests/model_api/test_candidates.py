"""The kernel side of the "Publish model" dialog: which variables are models and input
examples, what a choice would publish (schema and test prediction), and publishing it; the
regression and multi-label flows go through the same functions without the browser."""

from __future__ import annotations

import json

import numpy as np
import pytest
from mlfactory.model_api import candidates as c
from mlfactory.model_api.errors import PublishRefused

from .conftest import IRIS_FEATURES, IRIS_LABELS


@pytest.fixture(scope="module")
def frame():
    import pandas as pd
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return pd.DataFrame(X, columns=IRIS_FEATURES), np.array(IRIS_LABELS)[y]


@pytest.fixture(scope="module")
def named_clf(frame):
    from sklearn.linear_model import LogisticRegression

    X, y = frame
    return LogisticRegression(max_iter=1000).fit(X, y)


def test_a_fitted_classifier_is_listed_with_its_task_and_labels(named_clf):
    found = c.describe_model("clf", named_clf)
    assert found is not None
    assert (found["kind"], found["framework"], found["class"]) == (
        "estimator",
        "scikit-learn",
        "LogisticRegression",
    )
    assert found["task"] == "classification"
    assert found["labels"] == sorted(IRIS_LABELS)  # the model's own class order
    assert found["n_features"] == 4


def test_regressor_and_multilabel_tasks_are_inferred(regressor, multilabel):
    model, _ = regressor
    assert c.infer_task(model) == ("regression", [])
    ovr, _, Y = multilabel
    task, labels = c.infer_task(ovr)
    assert task == "multi-label" and len(labels) == Y.shape[1]


def test_what_is_not_a_model_is_left_out():
    from sklearn.linear_model import LogisticRegression

    assert c.describe_model("unfitted", LogisticRegression()) is None
    assert c.describe_model("cls", LogisticRegression) is None
    assert c.describe_model("np", np) is None
    assert c.describe_model("x", 3) is None
    assert c.describe_model("_hidden", LogisticRegression().fit([[0], [1]], [0, 1])) is None


def test_notebook_functions_are_models_and_library_functions_are_not():
    ns: dict = {}
    exec("def score(x):\n    return x.sum(axis=1)\n", {"__name__": "__main__"}, ns)  # noqa: S102
    found = c.describe_model("score", ns["score"])
    assert found is not None and found["kind"] == "function" and found["task"] is None
    assert c.describe_model("dumps", json.dumps) is None


def test_examples_are_frames_and_2d_numeric_arrays(frame):
    X, y = frame
    found = c.describe_example("X", X)
    assert found == {"name": "X", "kind": "DataFrame", "shape": [150, 4], "columns": IRIS_FEATURES}
    assert c.describe_example("A", np.zeros((3, 2)))["kind"] == "ndarray"
    assert c.describe_example("y", y) is None  # 1-D: labels, not an input
    assert c.describe_example("s", np.array([["a"]], dtype=object)) is None


def test_listing_sorts_and_skips_ipython_names(frame, named_clf):
    X, y = frame
    ns = {"clf": named_clf, "X": X, "y": y, "In": [], "_": named_clf, "n": 5}
    got = c.listing(ns, ["model.joblib"])
    assert got["ok"] is True
    assert [m["name"] for m in got["models"]] == ["clf"]
    assert [e["name"] for e in got["examples"]] == ["X"]
    assert got["files"] == ["model.joblib"]


def test_kernel_answers_format_as_json_for_user_expressions(frame, named_clf):
    from IPython.core.formatters import DisplayFormatter

    answer = c.listing_answer({"clf": named_clf, "X": frame[0]})
    data, _ = DisplayFormatter().format(answer)
    assert data["application/json"]["models"][0]["name"] == "clf"
    assert json.loads(data["text/plain"])["examples"][0]["name"] == "X"


def test_model_files_are_found_below_the_folder_without_hidden_ones(tmp_path):
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "a.joblib").write_bytes(b"")
    (tmp_path / ".secret").mkdir()
    (tmp_path / ".secret" / "b.pkl").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("")
    assert c.model_files(tmp_path) == ["models/a.joblib"]
    assert c.model_files(tmp_path, max_dirs=1) == []  # the top folder only


def choice(**kw):
    base = {"model": "clf", "example": "X", "name": "iris", "task": "classification"}
    return {**base, **kw}


def test_preview_gives_schema_and_a_test_prediction(frame, named_clf):
    X, _ = frame
    got = c.preview_answer(choice(), {"clf": named_clf, "X": X})
    assert got["ok"] is True, got
    assert [i["name"] for i in got["inputs"]] == IRIS_FEATURES
    assert {i["datatype"] for i in got["inputs"]} == {"FP64"}
    assert got["labels"] == sorted(IRIS_LABELS)
    assert "probabilities" in got["outputs"]
    headers, rows = got["prediction"]["headers"], got["prediction"]["rows"]
    assert headers[0] == "label" and len(rows) == c.PREVIEW_ROWS
    expected = named_clf.predict(X.iloc[: c.PREVIEW_ROWS])
    assert [r[0] for r in rows] == list(expected)


def test_label_names_from_the_dialog_rename_the_classes(frame, named_clf):
    got = c.preview_answer(choice(labels=["A", "B", "C"]), {"clf": named_clf, "X": frame[0]})
    assert got["ok"] and got["labels"] == ["A", "B", "C"]
    assert {r[0] for r in got["prediction"]["rows"]} <= {"A", "B", "C"}


@pytest.mark.parametrize(
    ("change", "words"),
    [
        ({"name": "Bad Name"}, "lowercase"),
        ({"model": "nope"}, "no variable 'nope'"),
        ({"example": ""}, "input example"),
        ({"example": "y"}, "not a DataFrame"),
        ({"task": ""}, "task"),
        ({"labels": ["a", "b"]}, "2 labels"),
    ],
)
def test_a_bad_choice_says_what_to_fix(frame, named_clf, change, words):
    X, y = frame
    got = c.preview_answer(choice(**change), {"clf": named_clf, "X": X, "y": y})
    assert got["ok"] is False and got["stage"] == "choice"
    assert words in got["error"], got
    assert "Traceback" not in got["error"]


def test_a_failing_test_prediction_is_shown_not_raised(frame):
    X, _ = frame

    class Broken:
        classes_ = np.array([0, 1])

        def predict_proba(self, x):
            raise RuntimeError("weights missing")

        def predict(self, x):
            raise RuntimeError("weights missing")

    got = c.preview_answer(choice(model="m"), {"m": Broken(), "X": X})
    assert got["ok"] is False and got["stage"] == "test_prediction"
    assert "weights missing" in got["error"]


def test_a_model_file_from_the_workspace(tmp_path, frame, named_clf):
    import joblib

    joblib.dump(named_clf, tmp_path / "clf.joblib")
    loaded = c.load_model_file("clf.joblib", tmp_path)
    assert list(loaded.classes_) == list(named_clf.classes_)
    for bad in ("/etc/passwd", "../x.joblib", "missing.joblib"):
        with pytest.raises(c.ChoiceError):
            c.load_model_file(bad, tmp_path)
    model, head = c.resolve_choice(
        {"X": frame[0]},
        choice(model="", file="clf.joblib"),
        lambda p: c.load_model_file(p, tmp_path),
    )
    assert model.predict(head).labels == list(named_clf.predict(head))


def test_publish_passes_provenance_and_the_test_input(frame, named_clf):
    X, _ = frame
    seen = {}

    def fake_registry(model, **kw):  # stands in for the upload only
        seen.update(kw, model=model)
        return {"model": model.name, "version": {"version": 3}}

    got = c.publish_answer(
        choice(notebook_path="work/train.ipynb", history_version="abc123", note="first cut"),
        {"clf": named_clf, "X": X},
        publish=fake_registry,
    )
    assert got == {"ok": True, "published": {"model": "iris", "version": {"version": 3}}}
    assert seen["notebook_path"] == "work/train.ipynb" and seen["history_version"] == "abc123"
    assert len(seen["test_input"]) == c.PREVIEW_ROWS
    assert "first cut" in seen["model"].description


def test_publish_refusals_come_back_as_the_message(frame, named_clf):
    def refusing(model, **kw):
        raise PublishRefused("the model registry refused the package (403): not yours")

    got = c.publish_answer(choice(), {"clf": named_clf, "X": frame[0]}, publish=refusing)
    assert got == {
        "ok": False,
        "stage": "publish",
        "error": "the model registry refused the package (403): not yours",
    }


def test_regression_and_multilabel_publish_through_the_same_flow(regressor, multilabel):
    """Without the browser: listing, preview and publish for the other two task types."""
    reg, Xr = regressor
    ovr, Xm, _ = multilabel
    ns = {"reg": reg, "Xr": Xr, "ovr": ovr, "Xm": Xm}
    listed = {m["name"]: m for m in c.listing(ns)["models"]}
    assert listed["reg"]["task"] == "regression"
    assert listed["ovr"]["task"] == "multi-label"
    got = c.preview_answer(
        {"model": "reg", "example": "Xr", "name": "prices", "task": "regression"}, ns
    )
    assert got["ok"], got
    assert "prediction" in got["prediction"]["headers"] and "std" in got["outputs"]
    labels = ["sports", "politics", "science"]
    published = []
    got = c.publish_answer(
        {
            "model": "ovr",
            "example": "Xm",
            "name": "topics",
            "task": "multi-label",
            "labels": labels,
        },
        ns,
        publish=lambda model, **kw: published.append(model) or {"version": {"version": 1}},
    )
    assert got["ok"], got
    assert published[0].labels == tuple(labels)
    assert published[0].predict(Xm[:2]).to_records()[0]["labels"] is not None
