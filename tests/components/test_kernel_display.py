"""The inserted cells in a real IPython kernel (jupyter_client + ipykernel, no pyplot): run
as inserted they name the input to fill; filled, they show figures as image/png and
results as text/html."""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from jupyter_client.manager import KernelManager
from mlfactory.components.catalog import BUILTIN, Catalog
from mlfactory.components.snippet import snippet

TIMEOUT = 120  # seconds to wait for a cell; a bound on waiting, never asserted on


@pytest.fixture(scope="module")
def kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    cache = tmp_path_factory.mktemp("component-cache")  # no manifest: the built-ins only
    km = KernelManager(kernel_name="python3")
    env = {"MLFACTORY_COMPONENT_CACHE": str(cache), "MLFACTORY_COMPONENT_SOURCES": ""}
    km.start_kernel(env={**os.environ, **env})
    kc = km.client()
    kc.start_channels()
    try:
        kc.wait_for_ready(timeout=TIMEOUT)
        yield kc
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


def run(kc: Any, code: str) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The cell's outputs (display_data, execute_result, error, stream) and its reply."""
    outputs: list[dict[str, Any]] = []

    def keep(msg: dict[str, Any]) -> None:
        if msg["msg_type"] in ("display_data", "execute_result", "error", "stream"):
            outputs.append({"type": msg["msg_type"], **msg["content"]})

    reply = kc.execute_interactive(code, output_hook=keep, timeout=TIMEOUT)
    return outputs, reply["content"]


def cell(ref: str, **filled: str) -> str:
    """The cell the panel inserts for `ref`, with the named inputs' lines replaced."""
    code = snippet(Catalog.from_sources([BUILTIN]).resolve(ref))
    for name, value in filled.items():
        code, n = re.subn(rf"^{name} = .*$", f"{name} = {value}", code, flags=re.M)
        assert n == 1, (name, code)
    return code


DATA = (
    "from sklearn.datasets import make_classification\n"
    "from sklearn.linear_model import LogisticRegression\n"
    "X_all, y_all = make_classification(n_samples=120, n_features=5, random_state=0)\n"
    "y_all = [('<b>yes</b>' if v else 'no') for v in y_all]\n"  # a label that needs escaping
    "model = LogisticRegression(max_iter=500).fit(X_all, y_all)\n"
)


def test_an_unfilled_cell_names_the_input_to_fill(kernel):
    outputs, reply = run(kernel, cell("train_classifier_cv@1.0.0"))
    assert reply["status"] == "error" and reply["ename"] == "PlaceholderError"
    assert reply["evalue"].startswith("X is required: replace `...` with your feature table")
    assert [o["type"] for o in outputs] == ["error"]
    # the message leads, then only the cell's own line: no frames of the platform's wrapper
    shown = outputs[0]["traceback"]
    assert "X is required" in shown[0] and len(shown) <= 3, shown
    assert not any("placeholders.py" in line for line in shown), shown
    assert re.search(r"Cell In\[\d+\], line \d+", "\n".join(shown)), shown


def test_plot_evaluation_shows_its_figures_inline(kernel):
    run(kernel, DATA)
    code = cell(
        "plot_evaluation@1.0.0",
        y_true="y_all",
        y_pred="model.predict(X_all)",
        y_score="model.predict_proba(X_all)",
        labels="list(model.classes_)",
    )
    outputs, reply = run(kernel, code)
    assert reply["status"] == "ok", outputs
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert [o["data"]["text/plain"].split(":")[0] for o in images] == [
        "confusion_matrix",
        "roc_curve",
    ]
    assert all(o["data"]["image/png"].startswith("iVBORw0KGgo") for o in images)  # PNG, base64
    _, reply = run(kernel, "import sys; assert 'matplotlib.pyplot' not in sys.modules")
    assert reply["status"] == "ok"  # shown without pyplot or the inline backend

    outputs, _ = run(kernel, 'figures["roc_curve"]')  # one figure alone shows too
    (result,) = outputs
    assert result["type"] == "execute_result" and "image/png" in result["data"]


def test_regression_figures_show_residuals(kernel):
    code = cell(
        "plot_evaluation@1.0.0",
        y_true="[1.0, 2.0, 3.5, 4.0]",
        y_pred="[1.2, 1.9, 3.0, 4.4]",
    )
    outputs, reply = run(kernel, code)
    assert reply["status"] == "ok", outputs
    names = [o["data"]["text/plain"].split(":")[0] for o in outputs if o["type"] == "display_data"]
    assert names == ["residuals", "predicted_vs_true"]


def test_results_show_a_summary_and_labelled_tables(kernel):
    run(kernel, DATA)
    code = cell(
        "train_classifier_cv@1.0.0",
        X="X_all",
        y="y_all",
        estimator="LogisticRegression(max_iter=500)",
    )
    outputs, reply = run(kernel, code)
    assert reply["status"] == "ok", outputs
    (shown,) = [o for o in outputs if o["type"] == "execute_result"]
    html = shown["data"]["text/html"]
    assert re.search(r"f1_macro \d\.\d{3} ± \d\.\d{3} over 5 folds", html), html
    assert "over 5 folds" in shown["data"]["text/plain"]
    _, reply = run(kernel, "assert result.mean == result['mean'] and result.to_dict()['model']")
    assert reply["status"] == "ok", reply

    code = cell("evaluate_classifier@1.0.0", y_true="y_all", y_pred="model.predict(X_all)")
    outputs, reply = run(kernel, code)
    assert reply["status"] == "ok", outputs
    (shown,) = [o for o in outputs if o["type"] == "execute_result"]
    html = shown["data"]["text/html"]
    assert "<th>true &lt;b&gt;yes&lt;/b&gt;</th>" in html and "<b>yes</b>" not in html
    assert "<th>predicted no</th>" in html and "Per class" in html
