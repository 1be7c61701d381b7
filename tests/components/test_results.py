"""Result displays: plain data for code (keys, attributes, to_dict), a summary and labelled,
escaped tables for people."""

from __future__ import annotations

import copy
import pickle

import numpy as np
import pytest
from mlfactory.components.results import Result, Table, escape, listing, number, score_summary


def test_numbers_read_like_a_report():
    assert number(0.123456789) == "0.123"
    assert number(np.float64(12.5)) == "12.500"
    assert number(np.int64(42)) == "42" and number(7) == "7"
    assert number(1.5e-6) == "1.5e-06" and number(2.5e9) == "2.5e+09"
    assert number(None) == "–" and number(float("nan")) == "–"
    assert number(True) == "True" and number("text") == "text"


def test_score_summary():
    assert score_summary("f1_macro", 0.9501, 0.0312, 5) == "f1_macro 0.950 ± 0.031 over 5 folds"


def test_listing_cuts_long_lists():
    assert listing([]) == "none" and listing(["a", 1]) == "a, 1"
    assert listing(map(str, range(15)), limit=3) == "0, 1, 2, … (+12 more)"


def test_table_html_labels_rows_and_escapes():
    table = Table(
        "Confusion <matrix>",
        ['predicted <img src=x onerror="alert(1)">', "predicted b"],
        [[2, 1], [0, 3]],
        index=["true <script>", "true b"],
        corner="true \\ predicted",
    )
    out = table.html()
    assert "<script>" not in out and "<img" not in out
    assert "<th>true &lt;script&gt;</th><td>2</td><td>1</td>" in out
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in out
    assert "<caption>Confusion &lt;matrix&gt;</caption>" in out
    assert out.index("true \\ predicted") < out.index("predicted b")
    text = table.text().splitlines()
    assert text[0] == "Confusion <matrix>"
    assert text[2].split() == ["true", "<script>", "2", "1"]


def test_escape_quotes_for_attributes():
    assert escape('"x" & <y>') == "&quot;x&quot; &amp; &lt;y&gt;"
    assert escape(0.5) == "0.500"


def _result() -> Result:
    return Result(
        {"mean": 0.95, "scores": np.array([0.9, 1.0]), "nested": Result({"a": 1}, title="n")},
        title="train <x>",
        summary=["f1 0.950 ± 0.050 over 2 folds"],
        tables=[Table("per fold", ["fold 1", "fold 2"], [[0.9, 1.0]])],
        notes=["a <note>"],
    )


def test_result_is_the_old_dict_with_attributes():
    r = _result()
    assert isinstance(r, dict) and r["mean"] == 0.95 and r.mean == 0.95
    assert r.scores is r["scores"]
    assert set(r) == {"mean", "scores", "nested"} and "mean" in dir(r)
    with pytest.raises(AttributeError, match="no attribute or key 'missing'"):
        r.missing  # noqa: B018
    plain = r.to_dict()
    assert type(plain) is dict and type(plain["nested"]) is dict and plain["nested"] == {"a": 1}
    assert r.summary == "f1 0.950 ± 0.050 over 2 folds"


def test_result_survives_copy_and_pickle():
    r = _result()
    for other in (copy.deepcopy(r), pickle.loads(pickle.dumps(r))):  # noqa: S301
        assert other.mean == 0.95 and other._repr_html_() == r._repr_html_()


def test_result_html_and_text():
    html = _result()._repr_html_()
    assert "<strong>train &lt;x&gt;</strong>" in html
    assert "<p>f1 0.950 ± 0.050 over 2 folds</p>" in html
    assert "<td>0.900</td><td>1.000</td>" in html
    assert "a &lt;note&gt;" in html and "<note>" not in html
    assert "mean, scores, nested" in html  # how to reach the data from code
    text = _result().text()
    assert text.startswith("train <x>\n\nf1 0.950") and "fold 1  fold 2" in text


def test_ipython_shows_html_and_a_readable_text():
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(_result())
    assert data["text/html"] == _result()._repr_html_()
    assert data["text/plain"].startswith("train <x>")  # not a 16-digit dict dump
