from __future__ import annotations

import io

import numpy as np
import pytest
from matplotlib.figure import Figure


def _cell_texts(fig: Figure) -> list[str]:
    return [t.get_text() for t in fig.axes[0].texts]


def test_binary_confusion_matrix_and_roc(component):
    y_true = np.array([0, 0, 0, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    y_score = np.array([0.1, 0.2, 0.6, 0.9, 0.8, 0.4])
    figures = component("plot_evaluation")(y_true, y_pred, y_score)
    assert set(figures) == {"confusion_matrix", "roc_curve"}
    cm = figures["confusion_matrix"]
    ax = cm.axes[0]
    assert ax.get_xlabel() == "Predicted label" and ax.get_ylabel() == "True label"
    assert _cell_texts(cm) == ["2", "1", "1", "2"]  # row by row: true 0, then true 1
    assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "1"]
    assert np.array_equal(ax.images[0].get_array(), [[2, 1], [1, 2]])
    roc = figures["roc_curve"].axes[0]
    assert len(roc.lines) == 2  # the curve and the chance diagonal
    legend = [t.get_text() for t in roc.get_legend().get_texts()]
    assert legend == ["1 (AUC = 0.889)", "Chance (AUC = 0.5)"]
    assert roc.get_xlabel() == "False positive rate" and roc.get_ylabel() == "True positive rate"
    buffer = io.BytesIO()
    figures["roc_curve"].savefig(buffer, format="png")  # renders headless, without pyplot
    assert buffer.getvalue().startswith(b"\x89PNG")


def test_multiclass_normalized_and_one_vs_rest(component):
    y_true = np.array(["cat", "dog", "fox", "cat", "dog", "fox"])
    y_pred = np.array(["cat", "dog", "dog", "cat", "dog", "fox"])
    proba = np.array(
        [
            [0.8, 0.1, 0.1],
            [0.1, 0.8, 0.1],
            [0.1, 0.5, 0.4],
            [0.7, 0.2, 0.1],
            [0.2, 0.7, 0.1],
            [0.1, 0.1, 0.8],
        ]
    )
    figures = component("plot_evaluation")(y_true, y_pred, proba, normalize=True)
    assert _cell_texts(figures["confusion_matrix"]) == [
        "100%",
        "0%",
        "0%",
        "0%",
        "100%",
        "0%",
        "0%",
        "50%",
        "50%",
    ]
    roc = figures["roc_curve"].axes[0]
    assert len(roc.lines) == 4  # three classes vs rest and chance
    legend = [t.get_text() for t in roc.get_legend().get_texts()]
    assert legend[0] == "cat vs rest (AUC = 1.000)" and legend[2] == "fox vs rest (AUC = 1.000)"
    with pytest.raises(ValueError, match="y_score has 3 columns but there are 2 classes"):
        component("plot_evaluation")(np.array([0, 1, 0]), y_score=proba[:3])


def test_regression_residuals(component):
    y_true = np.array([1.0, 2.0, 3.0, 4.0])
    y_pred = np.array([1.5, 2.0, 2.0, 4.5])
    figures = component("plot_evaluation")(y_true, y_pred)
    assert set(figures) == {"residuals", "predicted_vs_true"}
    ax = figures["residuals"].axes[0]
    assert ax.get_xlabel() == "Predicted value" and ax.get_ylabel().startswith("Residual")
    points = ax.collections[0].get_offsets()
    assert np.allclose(points, [[1.5, -0.5], [2.0, 0.0], [2.0, 1.0], [4.5, -0.5]])
    assert len(ax.lines) == 1 and list(ax.lines[0].get_ydata()) == [0.0, 0.0]  # the zero line
    pva = figures["predicted_vs_true"].axes[0]
    assert np.allclose(pva.collections[0].get_offsets(), np.c_[y_true, y_pred])


def test_large_regression_is_sampled_and_errors_are_named(component):
    plot = component("plot_evaluation")
    y = np.linspace(0, 1, 1000)
    figures = plot(y, y + 0.1, max_points=50)
    assert len(figures["residuals"].axes[0].collections[0].get_offsets()) == 50
    with pytest.raises(ValueError, match="pass y_pred, y_score, or both"):
        plot([0, 1])
    with pytest.raises(ValueError, match="task must be one of"):
        plot([0, 1], [0, 1], task="ranking")
    with pytest.raises(ValueError, match="y_true has values not in labels: 2"):
        plot([0, 1, 2], [0, 1, 1], labels=[0, 1])
    with pytest.raises(ValueError, match="regression plots need y_pred"):
        plot([0.5, 1.5], y_score=[0.1, 0.2], task="regression")


def test_figures_display_themselves_without_pyplot(component):
    figures = component("plot_evaluation")([0, 1, 1, 0], [0, 1, 0, 0], [0.2, 0.9, 0.4, 0.1])
    assert list(figures) == ["confusion_matrix", "roc_curve"]
    assert figures.roc_curve is figures["roc_curve"]
    for fig in figures.values():
        assert fig._repr_png_().startswith(b"\x89PNG\r\n\x1a\n")
    assert hasattr(figures, "_ipython_display_")  # a cell's value shows every figure
