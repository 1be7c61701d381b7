from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_classification
from sklearn.linear_model import LogisticRegression


def test_cv_scores_and_refit_model(component):
    X, y = make_classification(n_samples=200, n_features=6, n_informative=4, random_state=0)
    estimator = LogisticRegression(max_iter=500)
    result = component("train_classifier_cv")(X, y, estimator=estimator, cv=4, scoring="accuracy")
    assert len(result["scores"]) == 4
    assert result["mean"] == pytest.approx(result["scores"].mean())
    assert result["mean"] > 0.75  # an informative synthetic problem; a chance model gets ~0.5
    assert (result["model"].predict(X) == y).mean() > 0.75
    assert not hasattr(estimator, "coef_")  # the caller's estimator stays unfitted


def test_default_model_and_bad_cv(component):
    train = component("train_classifier_cv")
    X, y = make_classification(n_samples=60, n_features=4, random_state=1)
    result = train(X, y, cv=3)
    assert result["scoring"] == "f1_macro" and np.all(result["scores"] >= 0)
    with pytest.raises(ValueError, match="at least 2"):
        train(X, y, cv=1)


def test_dataframe_features(component):
    import pandas as pd

    X, y = make_classification(n_samples=120, n_features=4, random_state=2)
    frame = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    result = component("train_classifier_cv")(frame, pd.Series(y), cv=3, scoring="accuracy")
    assert list(result["model"].feature_names_in_) == ["a", "b", "c", "d"]
    assert result["mean"] > 0.7


def test_result_displays_a_summary_and_keeps_the_data(component):
    X, y = make_classification(n_samples=90, n_features=4, random_state=3)
    result = component("train_classifier_cv")(
        X, y, estimator=LogisticRegression(max_iter=500), cv=3, scoring="accuracy"
    )
    assert result.model is result["model"] and result.scoring == "accuracy"
    summary = f"accuracy {result.mean:.3f} ± {result.std:.3f} over 3 folds"
    assert result.summary.splitlines()[0] == summary
    html = result._repr_html_()
    assert f"<p>{summary}</p>" in html and "LogisticRegression" in html
    assert "".join(f"<td>{s:.3f}</td>" for s in result.scores) in html  # one cell per fold
    plain = result.to_dict()
    assert type(plain) is dict and set(plain) == {"model", "scores", "mean", "std", "scoring"}
