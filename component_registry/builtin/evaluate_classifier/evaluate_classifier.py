"""Evaluate a classifier's predictions: metrics, per-class report and confusion matrix."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn import metrics


def evaluate_classifier(y_true: Any, y_pred: Any, y_score: Any = None) -> dict[str, Any]:
    """Compare predictions with the truth.

    Returns accuracy, balanced accuracy, macro precision/recall/F1, a per-class report, the
    confusion matrix (rows: true class, columns: predicted, in ``labels`` order) and, when
    ``y_score`` is given (positive-class probability for binary, one column per class for
    multi-class), ROC AUC (one-vs-rest for multi-class).
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
    return out
