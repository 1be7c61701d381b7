"""How predictions look in a notebook: a short text form and an escaped HTML table."""

from __future__ import annotations

from html.parser import HTMLParser

import numpy as np
from mlfactory.model_api import Model, Prediction
from mlfactory.model_api import display as dp
from mlfactory.model_api.results import envelope

from .conftest import IRIS_FEATURES
from .helpers import ToyGenerator

HOSTILE = ["<script>alert(1)</script>", 'a&b"c', "plain"]


class Cells(HTMLParser):
    """Collects the text of every <th>/<td>, row by row, and every tag seen."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[list[str]] = []
        self.tags: list[str] = []
        self.caption = ""
        self._in: str | None = None

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        if tag == "tr":
            self.rows.append([])
        if tag in ("th", "td"):
            self.rows[-1].append("")
        self._in = tag

    def handle_endtag(self, tag):
        self._in = None

    def handle_data(self, data):
        if self._in == "caption":
            self.caption += data
        elif self.rows and self._in in ("th", "td", "code"):
            self.rows[-1][-1] += data


def parse(html: str) -> Cells:
    p = Cells()
    p.feed(html)
    return p


def _hostile_model(iris_clf):
    return Model(
        iris_clf, task="classification", name="iris", labels=HOSTILE, input_schema=IRIS_FEATURES
    )


def test_text_form_is_a_short_summary_not_a_field_dump(iris, iris_model):
    X, _ = iris
    pred = iris_model.predict(X[:30])
    text = repr(pred)
    lines = text.splitlines()
    assert lines[0] == "Prediction(iris (unversioned): classification, argmax, 30 rows)"
    assert len(lines) == 1 + 1 + dp.TEXT_ROWS + 1  # caption, header, rows, "more"
    assert lines[-1] == f"… {30 - dp.TEXT_ROWS} more rows"
    assert lines[1].split()[:2] == ["label", "score"]
    assert lines[2].split()[1] == pred.labels[0]
    assert "_shaped" not in text and "array(" not in text


def test_html_table_escapes_labels_and_holds_the_values(iris, iris_clf):
    X, _ = iris
    pred = _hostile_model(iris_clf).predict(X[:25])
    html = pred._repr_html_()
    assert "<script>" not in html and "&lt;script&gt;" in html
    parsed = parse(html)
    # no tag other than the table's own came through from a label
    assert set(parsed.tags) <= {"table", "caption", "thead", "tbody", "tr", "th", "td", "code"}
    header, *rows = parsed.rows
    assert header == ["", "label", "score"] + [f"probabilities.{lab}" for lab in HOSTILE]
    assert len(rows) == dp.HTML_ROWS + 1
    first = rows[0]
    assert first[1] == pred.labels[0]
    assert float(first[3]) == np.float64(f"{pred.probabilities[0, 0]:.4g}")
    assert rows[-1][0].startswith(f"… {25 - dp.HTML_ROWS} more rows")
    assert parsed.caption == "iris (unversioned): classification, argmax, 25 rows"


def test_sdk_and_in_process_predictions_look_the_same(iris, iris_model):
    X, _ = iris
    local = iris_model.predict(X[:7])
    body = envelope(local._shaped, model_name="iris", model_version="3", model_alias="production")
    local.model_version, local.model_alias = "3", "production"
    remote = Prediction.from_response(body)
    assert repr(remote) == repr(local)
    assert remote._repr_html_() == local._repr_html_()
    assert "iris v3 (production)" in repr(remote)


def test_the_preview_does_not_build_every_record(iris, iris_model):
    X, _ = iris
    pred = iris_model.predict(np.repeat(X, 100, axis=0))
    repr(pred), pred._repr_html_()
    assert pred._records is None  # to_records() of 15,000 rows for a 20-row table
    assert "… 14995 more rows" in repr(pred)


def test_each_task_renders(regressor, multilabel):
    reg, Xr = regressor
    pred = Model(reg, task="regression", name="reg").predict(Xr[:2])
    header, *rows = parse(pred._repr_html_()).rows
    assert header == ["", "prediction", "std", "lower", "upper"]
    assert float(rows[1][1]) == float(f"{pred.predictions[1]:.4g}")

    clf, Xm, _ = multilabel
    ml = Model(clf, task="multi-label", name="tags", labels=["x", "<y>", "z"], thresholds=0.3)
    pred = ml.predict(Xm[:3])
    assert "per_label_threshold (x ≥ 0.3, <y> ≥ 0.3, z ≥ 0.3)" in repr(pred)
    rows = parse(pred._repr_html_()).rows[1:]
    assert [r[1] for r in rows] == [", ".join(labels) for labels in pred.labels]

    gen = Model(ToyGenerator(), task="seq2seq", name="rev").predict(["<abc>"])
    assert ">cba<" in repr(gen) and "&gt;cba&lt;" in gen._repr_html_()


def test_many_labels_and_long_values_are_cut():
    labels = [f"class{i}" for i in range(25)]
    records = [{"label": "x" * 200, "probabilities": dict.fromkeys(labels, 0.04)}]
    headers, cells = dp.table(records, labels)
    assert headers[-1] == f"probabilities.… (+{25 - dp.MAX_LABEL_COLUMNS})"
    assert len(headers) == 1 + dp.MAX_LABEL_COLUMNS + 1
    assert len(cells[0][0]) == dp.MAX_CELL_CHARS and cells[0][0].endswith("…")
