"""Stratified train/test split that keeps class proportions and refuses splits it cannot make."""

from __future__ import annotations

from collections import Counter
from typing import Any

import numpy as np
from mlfactory.components.placeholders import expects
from sklearn.model_selection import train_test_split


@expects(
    X="your feature table (a pandas DataFrame or 2-d array, one row per sample)",
    y="your class labels (a 1-d array or Series, one per row of X)",
)
def train_test_split_stratified(
    X: Any, y: Any, test_size: float = 0.2, random_state: int = 0
) -> tuple[Any, Any, Any, Any]:
    """Split ``X`` and ``y`` into ``(X_train, X_test, y_train, y_test)``, stratified on ``y``.

    Each class keeps its proportion in both parts. Raises ValueError naming the classes
    with fewer than two members (they cannot appear on both sides) rather than letting
    scikit-learn fail later. ``random_state`` is fixed by default so results repeat.
    """
    y_arr = np.asarray(y)
    if not 0 < test_size < 1:
        raise ValueError(f"test_size must be between 0 and 1, got {test_size}")
    if len(y_arr) != len(X):
        raise ValueError(f"X has {len(X)} rows but y has {len(y_arr)}")
    rare = sorted(str(k) for k, n in Counter(y_arr.tolist()).items() if n < 2)
    if rare:
        raise ValueError(f"classes with fewer than 2 rows cannot be stratified: {', '.join(rare)}")
    return tuple(
        train_test_split(X, y, test_size=test_size, random_state=random_state, stratify=y_arr)
    )
