from __future__ import annotations

import numpy as np
import pytest


def test_profile_numeric_categorical_and_warnings(component):
    profile = component("profile_dataset")(
        {
            "age": np.array([20.0, 30.0, np.nan, 40.0]),
            "plan": np.array(["a", "b", "a", None], dtype=object),
            "user": np.array(["u1", "u2", "u3", "u4"], dtype=object),
            "const": np.array([1, 1, 1, 1]),
        }
    )
    assert profile["rows"] == 4
    age = profile["columns"]["age"]
    assert age["kind"] == "numeric" and age["missing"] == 1
    assert age["mean"] == pytest.approx(30.0) and age["median"] == pytest.approx(30.0)
    plan = profile["columns"]["plan"]
    assert plan["kind"] == "categorical" and plan["top"][0] == ("a", 2) and plan["missing"] == 1
    assert "age: 25% missing" in profile["warnings"]
    assert "const: constant" in profile["warnings"]
    assert "user: every value unique (an identifier?)" in profile["warnings"]
    # 1 of 4 missing is over the 20% default, yet "plan" is neither constant nor unique.
    assert [w for w in profile["warnings"] if w.startswith("plan")] == ["plan: 25% missing"]


def test_ragged_columns_are_refused(component):
    with pytest.raises(ValueError, match="differ in length"):
        component("profile_dataset")({"a": [1, 2], "b": [1]})


def test_dataframe_with_nullable_and_string_dtypes(component):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "age": pd.array([20, None, 40, 30], dtype="Int64"),
            "plan": pd.array(["a", "b", None, "a"], dtype="string"),
        }
    )
    profile = component("profile_dataset")(frame)
    assert profile["rows"] == 4
    age = profile["columns"]["age"]
    assert age["kind"] == "numeric" and age["missing"] == 1 and age["mean"] == pytest.approx(30.0)
    plan = profile["columns"]["plan"]
    assert plan["kind"] == "categorical" and plan["missing"] == 1 and plan["top"][0] == ("a", 2)
    with pytest.raises(TypeError, match="DataFrame or a dict of columns"):
        component("profile_dataset")([1, 2, 3])


def test_display_has_a_row_per_column_and_the_warnings(component):
    profile = component("profile_dataset")(
        {"age": np.array([20.0, 30.0, np.nan, 40.0]), "plan": np.array(["a", "b", "a", "a"])}
    )
    assert profile.rows == 4 and profile.summary == "4 rows, 2 columns, 1 warnings"
    html = profile._repr_html_()
    age = profile.columns["age"]
    assert "<th>age</th><td>numeric</td><td>float64</td><td>1 (25%)</td><td>3</td>" in html
    assert f"<td>{age['mean']:.3f}</td>" in html
    assert "<td>a (3), b (1)</td>" in html
    assert "Warning: age: 25% missing" in html
