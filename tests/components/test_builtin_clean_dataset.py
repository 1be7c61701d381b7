from __future__ import annotations

import numpy as np
import pandas as pd
import pytest


@pytest.fixture
def raw() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": [" 34", "51 ", "NA", "28", "28", "40"],
            "income": ["1200.5", "980", "", "1500", "1500", "n/a"],
            "zip": ["00123", "04000", "10115", "75001", "75001", "10115"],
            "active": ["yes", "No", "YES", "no", "no", None],
            "signup": ["2026-01-05", "2026-02-10", "2026-03-15", "null", "null", "2026-05-01"],
            "plan": [" pro", "free", "pro ", "free", "free", "-"],
            "source": ["web"] * 6,
        }
    )


def test_types_trimming_duplicates_and_constant_columns(component, raw):
    original = raw.copy()
    clean, report = component("clean_dataset")(raw)
    assert raw.equals(original)  # the input is not modified
    assert list(clean.columns) == ["age", "income", "zip", "active", "signup", "plan"]
    assert report["constant_columns_dropped"] == ["source"]
    assert report["duplicate_rows_dropped"] == 1 and clean.index.tolist() == [0, 1, 2, 3, 5]
    assert str(clean["age"].dtype) == "Int64" and clean["age"].tolist()[:2] == [34, 51]
    assert clean["income"].dtype == float and np.isnan(clean["income"][2])
    assert clean["zip"].tolist()[0] == "00123"  # leading zeros: kept as text
    assert report["kept_as_text"] == {"zip": "leading zeros (an identifier or code?)"}
    assert str(clean["active"].dtype) == "boolean" and clean["active"].tolist()[:2] == [True, False]
    assert clean["signup"].dtype.kind == "M" and clean["signup"][1] == pd.Timestamp("2026-02-10")
    assert clean["plan"].tolist()[:3] == ["pro", "free", "pro"] and pd.isna(clean["plan"][5])
    assert report["trimmed"] == {"age": 2, "plan": 2}
    assert report["missing_markers"] == {"age": 1, "income": 2, "signup": 2, "plan": 1}
    assert report["converted"]["age"].endswith("-> Int64")
    assert report["missing"] == {"age": 1, "income": 2, "active": 1, "signup": 1, "plan": 1}
    assert report["rows_before"] == 6 and report["rows_after"] == 5
    assert report["columns_before"] == 7 and report["columns_after"] == 6


def test_imputation_policies(component, raw):
    clean, report = component("clean_dataset")(
        raw,
        impute={"age": "median", "income": "mean", "plan": "most_frequent", "active": False},
    )
    # after the duplicate row goes: age 34, 51, -, 28, 40 -> median 37
    assert clean["age"][2] == 37 and str(clean["age"].dtype) == "Int64"
    assert report["imputed"]["age"] == {"policy": "median", "value": 37, "count": 1}
    assert clean["income"][2] == pytest.approx((1200.5 + 980 + 1500) / 3)
    assert report["imputed"]["income"]["count"] == 2
    assert clean["plan"][5] == "free"  # pro and free tie: the smallest wins, whatever the order
    assert clean["active"].tolist() == [True, False, True, False, False]
    assert report["imputed"]["active"] == {"policy": "constant", "value": False, "count": 1}
    assert not clean[["age", "income", "plan", "active"]].isna().any().any()
    assert report["missing"]["signup"] == 1 and pd.isna(clean["signup"][3])  # no policy given


def test_drop_rows_and_whole_frame_policy(component):
    data = {
        "x": np.array([1.0, np.nan, 3.0, 4.0]),
        "y": np.array(["a", "b", None, "a"], dtype=object),
    }
    clean, report = component("clean_dataset")(data, impute="drop_rows")
    assert clean.index.tolist() == [0, 3]
    assert report["rows_dropped_missing"] == 2
    assert report["imputed"]["x"] == {"policy": "drop_rows", "count": 1}
    clean, report = component("clean_dataset")(data, impute="most_frequent")
    assert clean["x"].tolist() == [1.0, 1.0, 3.0, 4.0]  # tie: the smallest value wins
    assert clean["y"].tolist() == ["a", "b", "a", "a"]


def test_missing_fraction_keep_and_errors(component):
    clean_dataset = component("clean_dataset")
    data = pd.DataFrame({"mostly": [None, None, None, 1.0], "k": [1, 1, 1, 1], "v": [1, 2, 3, 4]})
    clean, report = clean_dataset(data, max_missing_fraction=0.5, keep=["k"])
    assert list(clean.columns) == ["k", "v"] and report["missing_columns_dropped"] == ["mostly"]
    with pytest.raises(KeyError, match=r"keep: no columns \['nope'\]"):
        clean_dataset(data, keep=["nope"])
    with pytest.raises(ValueError, match="impute must be one of"):
        clean_dataset(data, impute="zero")
    with pytest.raises(ValueError, match="median needs a numeric column; 'p' is"):
        clean_dataset(pd.DataFrame({"p": ["a", None, "b"]}), impute={"p": "median"})
    with pytest.raises(ValueError, match="columns differ in length"):
        clean_dataset({"a": [1, 2], "b": [1]})
    with pytest.raises(TypeError, match="DataFrame or a dict of columns"):
        clean_dataset([[1, 2]])


def test_report_display_shows_only_what_changed(component):
    raw = pd.DataFrame({"n": [" 1", "2", "2"], "k": ["x", "x", "x"]})
    _, report = component("clean_dataset")(raw)
    assert report.rows_after == report["rows_after"] == 2
    assert report.summary == "3 → 2 rows, 2 → 1 columns"
    html = report._repr_html_()
    assert "<th>duplicate rows dropped</th><td>1</td>" in html
    assert "<th>constant columns dropped</th><td>k</td>" in html
    assert "imputed" not in html.split("Fields")[0]  # nothing was imputed: no row for it
