"""The model API in a real IPython kernel (jupyter_client), as a notebook shows it: errors
with the message first and a short traceback, predictions as a short text and an HTML table,
and a model fitted on a DataFrame predicting without scikit-learn's feature-name warning."""

from __future__ import annotations

import os
import re
from typing import Any

import pytest
from jupyter_client.manager import start_new_kernel

from .conftest import IRIS_FEATURES

ANSI = re.compile(r"\x1b\[[0-9;]*m")

SETUP = f"""
import warnings
warnings.simplefilter("error")  # "X does not have valid feature names" would fail a cell
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from mlfactory.model_api import Model
data = load_iris(as_frame=True)
X = data.data.set_axis({IRIS_FEATURES!r}, axis=1)
clf = LogisticRegression(max_iter=1000).fit(X, data.target)
model = Model(clf, task="classification", name="iris",
              labels=["setosa", "versicolor", "<virginica>"])
"""


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    home = tmp_path_factory.mktemp("kernel")
    env = {"IPYTHONDIR": str(home / "ipython"), "JUPYTER_RUNTIME_DIR": str(home / "rt")}
    km, kc = start_new_kernel(kernel_name="python3", cwd=str(home), env={**os.environ, **env})
    try:
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: Any, code: str) -> dict[str, Any]:
    """Execute one cell; return its error and execute_result contents (None when absent)."""
    seen: dict[str, Any] = {"error": None, "execute_result": None, "stream": []}

    def hook(msg: dict[str, Any]) -> None:
        kind = msg["msg_type"]
        if kind in ("error", "execute_result"):
            seen[kind] = msg["content"]
        elif kind == "stream":
            seen["stream"].append(msg["content"]["text"])

    reply = kc.execute_interactive(code, output_hook=hook, timeout=120)
    seen["reply"] = reply["content"]
    seen["count"] = reply["content"].get("execution_count")
    return seen


def traceback_lines(error: dict[str, Any]) -> list[str]:
    return ANSI.sub("", "\n".join(error["traceback"])).splitlines()


def test_a_data_scientists_cells(kernel):
    setup = run(kernel, SETUP)
    assert setup["error"] is None, setup["error"] and traceback_lines(setup["error"])

    # a DataFrame in, no feature-name warning (warnings are errors in this kernel)
    shown = run(kernel, "model.predict(X[:3])")
    assert shown["error"] is None, shown["error"] and traceback_lines(shown["error"])
    data = shown["execute_result"]["data"]
    text = data["text/plain"].splitlines()
    assert text[0] == "Prediction(iris (unversioned): classification, argmax, 3 rows)"
    assert len(text) == 2 + 3
    html = data["text/html"]
    assert html.startswith("<table") and "&lt;virginica&gt;" in html and "<virginica>" not in html

    # records, as the HTTP API takes them, one field short: the message, then the cell's line
    cell = "rows = [{'sepal_length': 5.1, 'sepal_width': 3.5, 'petal_length': 1.4}]\n"
    cell += "model.predict(rows)"
    failed = run(kernel, cell)
    error = failed["error"]
    assert error["ename"] == "InvalidInput"
    lines = traceback_lines(error)
    assert lines[0] == "InvalidInput: records[0] is missing 'petal_width'"
    assert lines[1:] == [f"  Cell In[{failed['count']}], line 2", "    model.predict(rows)"]

    # %xmode Verbose still gives IPython's whole traceback, our frames included
    run(kernel, "%xmode Verbose")
    try:
        lines = traceback_lines(run(kernel, cell)["error"])
    finally:
        run(kernel, "%xmode Context")
    assert lines[-1] == "InvalidInput: records[0] is missing 'petal_width'"
    assert any("schemas.py" in line for line in lines)


def test_a_failing_model_shows_its_own_error_briefly(kernel):
    cell = (
        "from mlfactory.model_api import Model\n"
        "def score(x):\n"
        "    return x / 0  # the model's bug\n"
        "broken = Model(lambda x: score(1), task='regression', name='b', input_schema=['a'])\n"
        "broken.predict([[1.0]])"
    )
    failed = run(kernel, cell)
    lines = traceback_lines(failed["error"])
    assert lines[0] == "ModelFailure: the model failed: ZeroDivisionError"
    assert "caused by ZeroDivisionError: division by zero" in lines
    assert "    return x / 0  # the model's bug" in lines
    assert len(lines) < 12, lines
