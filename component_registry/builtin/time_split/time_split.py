"""Time-based split: train on the past, test on the future, with an optional gap."""

from __future__ import annotations

from typing import Any

import numpy as np
from mlfactory.components.placeholders import expects


@expects(
    timestamps='one timestamp per row (a 1-d array of numbers or datetime64, e.g. df["date"])',
)
def time_split(
    timestamps: Any,
    test_size: float = 0.2,
    cutoff: Any = None,
    gap: Any = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(train_index, test_index)`` so that every training row precedes every test row.

    With ``cutoff``, rows at or after it are test rows; otherwise the latest ``test_size``
    fraction of the time range's rows are. ``gap`` (same unit as the timestamps, e.g. a
    ``numpy.timedelta64``) drops training rows closer than it to the first test time, so
    features computed over a window cannot leak the future. Rows sharing a timestamp are
    never split across the two sides. Indexes are positions into ``timestamps``.
    """
    t = np.asarray(timestamps)
    if t.ndim != 1 or len(t) < 2:
        raise ValueError("timestamps must be a 1-d sequence of at least 2 values")
    if cutoff is None:
        if not 0 < test_size < 1:
            raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
        ordered = np.sort(t)
        cutoff = ordered[min(len(t) - 1, int(np.floor(len(t) * (1 - test_size))))]
    test = t >= cutoff
    train = t < (cutoff - gap if gap is not None else cutoff)
    if not train.any() or not test.any():
        raise ValueError(f"cutoff {cutoff} leaves an empty train or test set")
    return np.flatnonzero(train), np.flatnonzero(test)
