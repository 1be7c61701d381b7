from __future__ import annotations

import numpy as np
import pytest


def test_shifted_column_drifts_and_stable_one_does_not(component):
    rng = np.random.default_rng(0)
    reference = {
        "x": rng.normal(0, 1, 2000),
        "y": rng.normal(5, 2, 2000),
        "plan": np.array(["a"] * 1000 + ["b"] * 1000, dtype=object),
    }
    current = {
        "x": rng.normal(0, 1, 2000),
        "y": rng.normal(6.5, 2, 2000),
        "plan": np.array(["a"] * 1800 + ["b"] * 200, dtype=object),
    }
    report = component("detect_drift")(reference, current)
    assert report["drifted"] == ["y", "plan"]
    assert report["columns"]["x"]["psi"] < 0.1 and report["columns"]["x"]["ks_p_value"] > 0.01
    assert report["columns"]["y"]["psi"] > 0.2
    assert report["columns"]["plan"]["kind"] == "categorical"


def test_missing_values_dropped_and_no_shared_columns(component):
    detect = component("detect_drift")
    same = np.array([1.0, 2.0, np.nan, 3.0, 4.0] * 50)
    assert detect({"a": same}, {"a": same})["drifted"] == []
    with pytest.raises(ValueError, match="share no columns"):
        detect({"a": same}, {"b": same})


def test_dataframes_are_accepted(component):
    import pandas as pd

    rng = np.random.default_rng(1)
    reference = pd.DataFrame(
        {"x": rng.normal(0, 1, 1000), "plan": pd.array(["a", "b"] * 500, dtype="string")}
    )
    current = pd.DataFrame(
        {"x": rng.normal(2, 1, 1000), "plan": pd.array(["a", "b", None, "a"] * 250, dtype="str")}
    )
    report = component("detect_drift")(reference, current)
    assert report["drifted"] == ["x"]
    assert report["columns"]["plan"]["kind"] == "categorical"
    assert report["columns"]["plan"]["psi"] < 0.2  # the missing quarter is dropped, not a category


def test_display_names_the_drifted_columns(component):
    reference = {"<b>x</b>": np.arange(200.0), "same": np.arange(200.0)}
    current = {"<b>x</b>": np.arange(200.0) + 150, "same": np.arange(200.0)}
    report = component("detect_drift")(reference, current)
    assert report.drifted == ["<b>x</b>"]
    assert report.summary == "1 of 2 columns drifted: <b>x</b>"
    html = report._repr_html_()
    assert "<b>x</b>" not in html and "<th>&lt;b&gt;x&lt;/b&gt;</th><td>numeric</td>" in html
    psi = report.columns["same"]["psi"]
    assert f"<th>same</th><td>numeric</td><td>{psi:.3f}</td>" in html
    assert html.count("<td>yes</td>") == 1 and html.count("<td>no</td>") == 1
