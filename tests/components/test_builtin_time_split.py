from __future__ import annotations

import numpy as np
import pytest


def test_past_trains_future_tests_and_ties_stay_together(component):
    t = np.array([5, 1, 3, 3, 9, 7, 2, 8, 4, 6])
    train, test = component("time_split")(t, test_size=0.3)
    assert t[train].max() < t[test].min()
    assert sorted(t[test].tolist()) == [7, 8, 9]
    assert len(train) + len(test) == len(t)
    ties = np.array([1, 2, 2, 2, 3])
    train, test = component("time_split")(ties, test_size=0.5)
    assert set(ties[test].tolist()) == {2, 3} and set(ties[train].tolist()) == {1}


def test_cutoff_and_gap_with_dates(component):
    days = np.arange("2026-01-01", "2026-01-11", dtype="datetime64[D]")
    train, test = component("time_split")(
        days, cutoff=np.datetime64("2026-01-08"), gap=np.timedelta64(2, "D")
    )
    assert days[test].min() == np.datetime64("2026-01-08")
    assert days[train].max() == np.datetime64("2026-01-05")  # 06 and 07 fall in the gap


def test_empty_side_is_refused(component):
    with pytest.raises(ValueError, match="empty train or test"):
        component("time_split")([1, 2, 3], cutoff=0)
