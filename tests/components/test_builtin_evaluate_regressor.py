from __future__ import annotations

import numpy as np
import pytest


def test_metrics_by_hand(component):
    y_true = np.array([2.0, 4.0, 6.0, 8.0])
    y_pred = np.array([3.0, 4.0, 4.0, 8.0])  # residuals -1, 0, 2, 0
    report = component("evaluate_regressor")(y_true, y_pred)
    assert report["n"] == 4
    assert report["mae"] == pytest.approx(0.75)
    assert report["rmse"] == pytest.approx(np.sqrt(5 / 4))
    assert report["r2"] == pytest.approx(1 - 5 / 20)  # SS_res 5, SS_tot 20
    assert report["mape"] == pytest.approx((0.5 + 0 + 1 / 3 + 0) / 4)
    assert report["bias"] == pytest.approx(-0.25) and report["max_error"] == 2.0
    assert report["residuals"]["mean"] == pytest.approx(0.25)
    assert report["residuals"]["min"] == -1.0 and report["residuals"]["max"] == 2.0
    assert report["residuals"]["median"] == pytest.approx(0.0)


def test_mape_leaves_out_zero_truths(component):
    report = component("evaluate_regressor")([0.0, 10.0, 0.0], [1.0, 12.0, 0.0])
    assert report["mape"] == pytest.approx(0.2) and report["mape_rows_excluded"] == 2
    assert report["smape"] == pytest.approx((2.0 + 2 * 2 / 22) / 2)  # the 0/0 row is skipped
    all_zero = component("evaluate_regressor")([0.0, 0.0], [1.0, 2.0])
    assert all_zero["mape"] is None and all_zero["r2"] is None  # constant truth: no R²
    assert np.isfinite(all_zero["mae"])


def test_weights_and_lists(component):
    report = component("evaluate_regressor")([1, 2, 3], [1, 2, 6], sample_weight=[1, 1, 0])
    assert report["mae"] == 0 and report["rmse"] == 0 and report["mape"] == 0
    assert report["max_error"] == 3  # the unweighted view still shows the outlier


def test_bad_input_is_named(component):
    evaluate = component("evaluate_regressor")
    with pytest.raises(ValueError, match="y_true has 2 values but y_pred has 3"):
        evaluate([1, 2], [1, 2, 3])
    with pytest.raises(ValueError, match="y_pred has 1 missing or infinite"):
        evaluate([1.0, 2.0], [1.0, np.nan])
    with pytest.raises(ValueError, match="y_true must be numeric"):
        evaluate(["a", "b"], [1, 2])
    with pytest.raises(ValueError, match="sample_weight must be non-negative"):
        evaluate([1, 2], [1, 2], sample_weight=[-1, 1])


def test_display_shows_metrics_and_residuals(component):
    report = component("evaluate_regressor")([1.0, 2.0, 0.0, 4.0], [1.5, 2.0, 0.5, 3.0])
    assert report.mae == report["mae"]
    assert report.summary == (
        f"MAE {report.mae:.3f} · RMSE {report.rmse:.3f} · R² {report.r2:.3f} on 4 rows"
    )
    html = report._repr_html_()
    assert f"<tr><th>rmse</th><td>{report.rmse:.3f}</td></tr>" in html
    assert f"<td>{report.residuals['q95']:.3f}</td>" in html
    assert "MAPE leaves out 1 rows" in html  # the zero truth
