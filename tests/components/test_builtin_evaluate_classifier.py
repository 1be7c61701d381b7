from __future__ import annotations

import numpy as np
import pytest


def test_binary_metrics_confusion_matrix_and_auc(component):
    y_true = np.array([0, 0, 0, 1, 1, 1])
    y_pred = np.array([0, 0, 1, 1, 1, 0])
    y_score = np.array([0.1, 0.2, 0.6, 0.9, 0.8, 0.4])
    report = component("evaluate_classifier")(y_true, y_pred, y_score)
    assert report["accuracy"] == pytest.approx(4 / 6)
    assert report["labels"] == [0, 1]
    assert report["confusion_matrix"].tolist() == [[2, 1], [1, 2]]
    assert report["roc_auc"] == pytest.approx(8 / 9)
    assert report["per_class"]["1"]["recall"] == pytest.approx(2 / 3)


def test_multiclass_with_probabilities(component):
    y_true = np.array(["a", "b", "c", "a", "b", "c"])
    proba = np.eye(3)[[0, 1, 2, 0, 1, 2]]
    report = component("evaluate_classifier")(y_true, y_true, proba)
    assert report["f1_macro"] == 1.0 and report["roc_auc"] == 1.0
    assert np.trace(report["confusion_matrix"]) == 6


def test_shape_mismatch(component):
    with pytest.raises(ValueError, match="shape"):
        component("evaluate_classifier")([0, 1], [0])


def test_display_labels_the_matrix_and_escapes_class_names(component):
    y_true = np.array(["<i>cat</i>", "dog", "dog", "<i>cat</i>", "dog"])
    y_pred = np.array(["<i>cat</i>", "dog", "<i>cat</i>", "<i>cat</i>", "dog"])
    report = component("evaluate_classifier")(y_true, y_pred)
    assert report.confusion_matrix is report["confusion_matrix"]
    html = report._repr_html_()
    assert "<i>" not in html
    cm = report.confusion_matrix.tolist()  # [[2, 0], [1, 2]]: labels sorted, cat first
    assert (
        "<tr><th>true \\ predicted</th><th>predicted &lt;i&gt;cat&lt;/i&gt;</th>"
        "<th>predicted dog</th></tr>"
    ) in html
    assert f"<tr><th>true dog</th><td>{cm[1][0]}</td><td>{cm[1][1]}</td></tr>" in html
    dog = report.per_class["dog"]
    assert (
        f"<tr><th>dog</th><td>{dog['precision']:.3f}</td><td>{dog['recall']:.3f}</td>"
        f"<td>{dog['f1-score']:.3f}</td><td>{int(dog['support'])}</td></tr>"
    ) in html
    assert f"accuracy {report.accuracy:.3f}" in report.summary
    assert "ROC AUC" not in report.summary  # no scores given
