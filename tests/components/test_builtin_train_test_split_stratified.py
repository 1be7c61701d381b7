from __future__ import annotations

import numpy as np
import pytest


def test_class_proportions_kept_and_repeatable(component):
    split = component("train_test_split_stratified")
    X = np.arange(200).reshape(100, 2)
    y = np.array([0] * 80 + [1] * 20)
    X_train, X_test, y_train, y_test = split(X, y, test_size=0.25)
    assert len(y_test) == 25 and len(y_train) == 75
    assert y_test.mean() == pytest.approx(0.2) and y_train.mean() == pytest.approx(0.2)
    # Rows stay aligned with their labels, and the default seed repeats the split.
    assert ((X_train[:, 0] // 2 >= 80) == (y_train == 1)).all()
    assert (split(X, y, test_size=0.25)[1] == X_test).all()


def test_singleton_class_is_named(component):
    with pytest.raises(ValueError, match="fewer than 2 rows cannot be stratified: c"):
        component("train_test_split_stratified")(np.zeros((5, 1)), ["a", "a", "b", "b", "c"])


def test_dataframe_rows_keep_their_labels(component):
    import pandas as pd

    frame = pd.DataFrame({"x": np.arange(40), "label": ["a"] * 32 + ["b"] * 8})
    X_train, X_test, y_train, y_test = component("train_test_split_stratified")(
        frame[["x"]], frame["label"], test_size=0.25
    )
    assert isinstance(X_train, pd.DataFrame) and len(X_test) == 10
    assert (y_test == "b").sum() == 2 and (y_train == "b").sum() == 6
    assert (frame.loc[X_train.index, "label"] == y_train).all()
