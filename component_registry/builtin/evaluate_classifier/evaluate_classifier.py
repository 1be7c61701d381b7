"""Evaluate a classifier's predictions: metrics, per-class report and confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, Table, number
from sklearn import metrics


def _display(out: dict[str, Any]) -> Result:
    labels = out["labels"]
    headline = [
        f"accuracy {number(out['accuracy'])}",
        f"balanced accuracy {number(out['balanced_accuracy'])}",
        f"f1_macro {number(out['f1_macro'])}",
    ]
    if "roc_auc" in out:
        headline.append(f"ROC AUC {number(out['roc_auc'])}")
    n = int(out["confusion_matrix"].sum())
    report = out["per_class"]
    return Result(
        out,
        title="evaluate_classifier",
        summary=[" · ".join(headline) + f" on {n} rows"],
        tables=[
            Table(
                "Confusion matrix (rows: true class, columns: predicted)",
                [f"predicted {v}" for v in labels],
                out["confusion_matrix"].tolist(),
                index=[f"true {v}" for v in labels],
                corner="true \\ predicted",
            ),
            Table(
                "Per class",
                ["precision", "recall", "f1-score", "support"],
                [
                    [report[k]["precision"], report[k]["recall"], report[k]["f1-score"]]
                    + [int(report[k]["support"])]
                    for k in [*map(str, labels), "macro avg", "weighted avg"]
                ],
                index=[*labels, "macro avg", "weighted avg"],
                corner="class",
            ),
        ],
    )


@expects(
    y_true="the true class labels (a 1-d array or Series, e.g. y_test)",
    y_pred="the predicted labels for the same rows (e.g. model.predict(X_test))",
    y_score="predicted probabilities (e.g. model.predict_proba(X_test)), or None",
)
def evaluate_classifier(y_true: Any, y_pred: Any, y_score: Any = None) -> dict[str, Any]:
    """Compare predictions with the truth.

    Returns accuracy, balanced accuracy, macro precision/recall/F1, a per-class report, the
    confusion matrix (rows: true class, columns: predicted, in ``labels`` order) and, when
    ``y_score`` is given (positive-class probability for binary, one column per class for
    multi-class), ROC AUC (one-vs-rest for multi-class). The dict is a ``Result``: keys also
    read as attributes, and a notebook shows the headline metrics, the labelled confusion
    matrix and the per-class table.
    """
    y_true = np.asarray(y_true)
    y_pred = np.asarray(y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true has shape {y_true.shape} but y_pred has {y_pred.shape}")
    labels = np.unique(np.concatenate([y_true, y_pred]))
    p, r, f, _ = metrics.precision_recall_fscore_support(
        y_true, y_pred, labels=labels, average="macro", zero_division=0
    )
    out: dict[str, Any] = {
        "accuracy": float(metrics.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(metrics.balanced_accuracy_score(y_true, y_pred)),
        "precision_macro": float(p),
        "recall_macro": float(r),
        "f1_macro": float(f),
        "labels": labels.tolist(),
        "confusion_matrix": metrics.confusion_matrix(y_true, y_pred, labels=labels),
        "per_class": metrics.classification_report(
            y_true, y_pred, labels=labels, output_dict=True, zero_division=0
        ),
    }
    if y_score is not None:
        score = np.asarray(y_score)
        if len(labels) == 2 and score.ndim == 2:
            score = score[:, 1]
        out["roc_auc"] = float(
            metrics.roc_auc_score(y_true, score, multi_class="ovr" if score.ndim == 2 else "raise")
        )
    return _display(out)
