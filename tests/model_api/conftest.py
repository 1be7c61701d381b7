"""Fixtures for the model API tests: small real scikit-learn models, trained once."""

from __future__ import annotations

import numpy as np
import pytest

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
IRIS_LABELS = ["setosa", "versicolor", "virginica"]


@pytest.fixture(scope="session")
def iris():
    from sklearn.datasets import load_iris

    X, y = load_iris(return_X_y=True)
    return X, y


@pytest.fixture(scope="session")
def iris_clf(iris):
    from sklearn.linear_model import LogisticRegression

    X, y = iris
    return LogisticRegression(max_iter=1000).fit(X, y)


@pytest.fixture(scope="session")
def regressor():
    """BayesianRidge: predict(X, return_std=True) gives mean and std in one call."""
    from sklearn.datasets import make_regression
    from sklearn.linear_model import BayesianRidge

    X, y = make_regression(n_samples=80, n_features=3, noise=5.0, random_state=0)
    return BayesianRidge().fit(X, y), X


@pytest.fixture(scope="session")
def multilabel():
    from sklearn.datasets import make_multilabel_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    X, Y = make_multilabel_classification(n_samples=120, n_features=5, n_classes=3, random_state=0)
    return OneVsRestClassifier(LogisticRegression(max_iter=1000)).fit(X, Y), X, Y


@pytest.fixture
def iris_model(iris_clf):
    from mlfactory.model_api import Model

    return Model(
        iris_clf,
        task="classification",
        name="iris",
        labels=IRIS_LABELS,
        input_schema=IRIS_FEATURES,
    )


def iris_records(X: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(IRIS_FEATURES, map(float, row), strict=True)) for row in X]
