"""Evaluation figures with matplotlib: confusion matrix, ROC curves, residual plots.

Figures are built with ``matplotlib.figure.Figure``, not pyplot: no GUI backend is needed
(headless servers, Agg), nothing global is left open, and each figure is freed with its last
reference. Figures are ``ResultFigure``s, which draw themselves as PNG in a notebook
without pyplot; the returned ``Figures`` shows all of them when it is a cell's value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure
from mlfactory.components.figures import Figures, ResultFigure
from mlfactory.components.placeholders import expects
from sklearn import metrics

TASKS = ("auto", "classification", "regression")


def _confusion(
    y_true: np.ndarray, y_pred: np.ndarray, labels: list[Any], normalize: bool
) -> Figure:
    cm = metrics.confusion_matrix(y_true, y_pred, labels=labels)
    shown = cm.astype(float)
    if normalize:
        totals = cm.sum(axis=1, keepdims=True)
        shown = np.divide(cm, totals, out=np.zeros_like(shown), where=totals > 0)
    size = max(4.0, 0.6 * len(labels) + 2.5)
    fig = ResultFigure(figsize=(size + 1, size), layout="constrained")
    ax = fig.add_subplot()
    image = ax.imshow(shown, cmap="Blues", vmin=0, vmax=1 if normalize else None)
    fig.colorbar(image, ax=ax, label="share of true class" if normalize else "rows")
    threshold = (shown.max() + shown.min()) / 2
    for i in range(len(labels)):
        for j in range(len(labels)):
            text = f"{shown[i, j]:.0%}" if normalize else str(cm[i, j])
            color = "white" if shown[i, j] > threshold else "black"
            ax.text(j, i, text, ha="center", va="center", color=color)
    names = [str(v) for v in labels]
    ax.set_xticks(range(len(labels)), names, rotation=45 if max(map(len, names)) > 6 else 0)
    ax.set_yticks(range(len(labels)), names)
    ax.set_xlabel("Predicted label")
    ax.set_ylabel("True label")
    ax.set_title("Confusion matrix" + (" (normalized by true class)" if normalize else ""))
    return fig


def _roc(y_true: np.ndarray, score: np.ndarray, classes: list[Any]) -> Figure:
    fig = ResultFigure(figsize=(6, 5), layout="constrained")
    ax = fig.add_subplot()
    if len(classes) < 2:
        raise ValueError("ROC curves need at least two classes in y_true")
    if score.ndim == 2 and score.shape[1] != len(classes):
        raise ValueError(
            f"y_score has {score.shape[1]} columns but there are {len(classes)} classes "
            f"({', '.join(map(str, classes))}); pass labels= in the model's classes_ order"
        )
    if len(classes) == 2:
        positive = score[:, 1] if score.ndim == 2 else score
        fpr, tpr, _ = metrics.roc_curve(y_true, positive, pos_label=classes[1])
        ax.plot(fpr, tpr, label=f"{classes[1]} (AUC = {metrics.auc(fpr, tpr):.3f})")
    else:
        if score.ndim != 2:
            raise ValueError("multi-class ROC needs y_score with one column per class")
        for k, cls in enumerate(classes):
            truth = y_true == cls
            if truth.all() or not truth.any():
                continue  # a class absent from y_true has no ROC curve
            fpr, tpr, _ = metrics.roc_curve(truth, score[:, k])
            ax.plot(fpr, tpr, label=f"{cls} vs rest (AUC = {metrics.auc(fpr, tpr):.3f})")
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="Chance (AUC = 0.5)")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1.01)
    ax.set_xlabel("False positive rate")
    ax.set_ylabel("True positive rate")
    ax.set_title("ROC curve" if len(classes) == 2 else "ROC curves (one vs rest)")
    ax.legend(loc="lower right")
    return fig


def _regression(
    y_true: np.ndarray, y_pred: np.ndarray, max_points: int, seed: int
) -> dict[str, Figure]:
    residuals = y_true - y_pred
    idx = np.arange(len(y_true))
    if len(idx) > max_points:  # draw a sample; a million dots hide the pattern and slow the page
        idx = np.sort(np.random.default_rng(seed).choice(idx, max_points, replace=False))
    res_fig = ResultFigure(figsize=(6, 4.5), layout="constrained")
    ax = res_fig.add_subplot()
    ax.scatter(y_pred[idx], residuals[idx], s=10, alpha=0.5)
    ax.axhline(0.0, color="grey", linestyle="--")
    ax.set_xlabel("Predicted value")
    ax.set_ylabel("Residual (true - predicted)")
    ax.set_title("Residuals")
    pva = ResultFigure(figsize=(5.5, 5), layout="constrained")
    ax = pva.add_subplot()
    ax.scatter(y_true[idx], y_pred[idx], s=10, alpha=0.5)
    lo = float(min(y_true.min(), y_pred.min()))
    hi = float(max(y_true.max(), y_pred.max()))
    ax.plot([lo, hi], [lo, hi], linestyle="--", color="grey", label="perfect prediction")
    ax.set_xlabel("True value")
    ax.set_ylabel("Predicted value")
    ax.set_title("Predicted vs true")
    ax.legend(loc="upper left")
    return {"residuals": res_fig, "predicted_vs_true": pva}


@expects(
    y_true="the true labels or values (a 1-d array or Series, e.g. y_test)",
    y_pred="the model's predictions for the same rows (e.g. model.predict(X_test)), or None",
    y_score="predicted probabilities (e.g. model.predict_proba(X_test)), or None",
)
def plot_evaluation(
    y_true: Any,
    y_pred: Any = None,
    y_score: Any = None,
    labels: list[Any] | None = None,
    task: str = "auto",
    normalize: bool = False,
    max_points: int = 5000,
    random_state: int = 0,
) -> dict[str, Figure]:
    """Draw the evaluation figures that apply and return them by name.

    Classification: ``confusion_matrix`` (needs ``y_pred``; counts, or shares of each true
    class with ``normalize``) and ``roc_curve`` (needs ``y_score``: positive-class
    probabilities, or one column per class in ``labels`` order, the model's ``classes_``;
    one-vs-rest curves for several classes, each with its AUC). Regression: ``residuals``
    (residual vs prediction) and ``predicted_vs_true``, at most ``max_points`` dots drawn
    (a seeded sample). ``task="auto"`` treats float ``y_true`` as regression, anything else
    as classification. Figures are ``matplotlib.figure.Figure`` objects (no pyplot state);
    save one with ``fig.savefig("roc.png")``. As a cell's value the result shows every
    figure inline.
    """
    if task not in TASKS:
        raise ValueError(f"task must be one of {', '.join(TASKS)}, got {task!r}")
    t = np.asarray(y_true)
    if t.ndim != 1 or len(t) == 0:
        raise ValueError(f"y_true must be a non-empty 1-d array, got shape {t.shape}")
    if task == "auto":
        task = "regression" if t.dtype.kind == "f" else "classification"
    if y_pred is None and y_score is None:
        raise ValueError("pass y_pred, y_score, or both")
    p = None if y_pred is None else np.asarray(y_pred)
    if p is not None and p.shape != t.shape:
        raise ValueError(f"y_true has shape {t.shape} but y_pred has {p.shape}")
    if task == "regression":
        if p is None:
            raise ValueError("regression plots need y_pred")
        regression = _regression(t.astype(float), p.astype(float), max_points, random_state)
        return Figures(regression, title="plot_evaluation: regression")
    if labels is None:
        seen = t if p is None else np.concatenate([t, p])
        labels = np.unique(seen).tolist()
    else:
        labels = list(labels)
        unknown = sorted({str(v) for v in np.unique(t)} - {str(v) for v in labels})
        if unknown:
            raise ValueError(f"y_true has values not in labels: {', '.join(unknown)}")
    figures: dict[str, Figure] = {}
    if p is not None:
        figures["confusion_matrix"] = _confusion(t, p, labels, normalize)
    if y_score is not None:
        score = np.asarray(y_score, dtype=float)
        if len(score) != len(t):
            raise ValueError(f"y_true has {len(t)} rows but y_score has {len(score)}")
        figures["roc_curve"] = _roc(t, score, labels)
    return Figures(figures, title="plot_evaluation: classification")
