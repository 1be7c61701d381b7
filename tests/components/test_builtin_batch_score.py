from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression


class Counting:
    """A fitted model that records the size of each predict call."""

    def __init__(self, model, fail_after: int | None = None):
        self.model, self.sizes, self.fail_after = model, [], fail_after
        self.classes_ = getattr(model, "classes_", None)
        self.feature_names_in_ = model.feature_names_in_

    def predict(self, X):
        if self.fail_after is not None and len(self.sizes) >= self.fail_after:
            raise RuntimeError("model server went away")
        self.sizes.append(len(X))
        return self.model.predict(X)

    def predict_proba(self, X):
        return self.model.predict_proba(X)


@pytest.fixture
def data() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(
        {"customer_id": np.arange(2500), "a": rng.normal(size=2500), "b": rng.normal(size=2500)}
    )
    frame["label"] = np.where(frame["a"] + frame["b"] > 0, "churn", "stay")
    return frame


@pytest.fixture
def classifier(data) -> LogisticRegression:
    return LogisticRegression().fit(data[["a", "b"]], data["label"])


def test_dataframe_in_batches_with_probabilities(component, data, classifier):
    model = Counting(classifier)
    result = component("batch_score")(model, data, batch_size=1000, keep_columns=["customer_id"])
    assert model.sizes == [1000, 1000, 500]
    assert result["rows"] == 2500 and result["batches"] == 3 and result["output_path"] is None
    out = result["predictions"]
    assert result["columns"] == ["customer_id", "prediction", "proba_churn", "proba_stay"]
    assert out["customer_id"].tolist() == list(range(2500))
    assert (out["prediction"] == classifier.predict(data[["a", "b"]])).all()
    assert np.allclose(
        out[["proba_churn", "proba_stay"]], classifier.predict_proba(data[["a", "b"]])
    )


def test_generator_of_chunks_to_csv(component, data, classifier, tmp_path):
    def chunks():
        for start in range(0, 2500, 700):
            yield data.iloc[start : start + 700].to_dict("list")

    path = tmp_path / "scores.csv"
    result = component("batch_score")(
        classifier,
        chunks(),
        batch_size=500,
        output_path=path,
        keep_columns=["customer_id"],
        probabilities=False,
    )
    assert result["output_path"] == str(path) and result["predictions"] is None
    assert result["batches"] == 7  # three 700-row chunks cut into 500 + 200, then 400
    back = pd.read_csv(path)
    assert list(back.columns) == ["customer_id", "prediction"] and len(back) == 2500
    assert (back["prediction"] == classifier.predict(data[["a", "b"]])).all()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["scores.csv"]


def test_parquet_output_regressor_and_overwrite(component, data, tmp_path):
    model = LinearRegression().fit(data[["a", "b"]], data["a"] * 2)
    path = tmp_path / "scores.parquet"
    score = component("batch_score")
    result = score(model, data, batch_size=1024, output_path=path, prediction_column="score")
    back = pd.read_parquet(path)
    assert result["columns"] == ["score"] and len(back) == 2500
    assert np.allclose(back["score"], data["a"] * 2)
    with pytest.raises(FileExistsError, match="pass overwrite=True"):
        score(model, data, output_path=path)
    score(model, data.head(10), output_path=path, overwrite=True)
    assert len(pd.read_parquet(path)) == 10


def test_failure_leaves_no_partial_file(component, data, classifier, tmp_path):
    path = tmp_path / "scores.parquet"
    with pytest.raises(RuntimeError, match="model server went away"):
        component("batch_score")(
            Counting(classifier, fail_after=2), data, batch_size=1000, output_path=path
        )
    assert list(tmp_path.iterdir()) == []


def test_arrays_and_bad_arguments(component, data, classifier):
    score = component("batch_score")
    arr_model = LogisticRegression().fit(data[["a", "b"]].to_numpy(), data["label"])
    result = score(arr_model, data[["a", "b"]].to_numpy(), batch_size=2000)
    assert result["batches"] == 2 and len(result["predictions"]) == 2500
    with pytest.raises(KeyError, match=r"no feature columns \['b'\]"):
        score(classifier, data[["a"]])
    with pytest.raises(ValueError, match="batch_size must be a positive integer"):
        score(classifier, data, batch_size=0)
    with pytest.raises(ValueError, match="no rows to score"):
        score(classifier, data.head(0))
    with pytest.raises(ValueError, match="has no predict_proba"):
        score(LinearRegression().fit(data[["a"]], data["b"]), data, probabilities=True)
    with pytest.raises(TypeError, match="iterable of those chunks"):
        score(classifier, 42)


def test_display_says_where_the_predictions_are(component, tmp_path):
    model = LogisticRegression().fit(np.array([[0.0], [1.0], [2.0], [3.0]]), [0, 0, 1, 1])
    result = component("batch_score")(model, np.array([[0.5], [2.5], [1.0]]), batch_size=2)
    assert result.rows == 3 and result.predictions is result["predictions"]
    assert result.summary.splitlines()[0] == (
        "Scored 3 rows in 2 batches, in result.predictions (a DataFrame)"
    )
    target = tmp_path / "scores.csv"
    written = component("batch_score")(model, np.array([[0.5]]), output_path=target)
    assert f"written to {target}" in written._repr_html_()
