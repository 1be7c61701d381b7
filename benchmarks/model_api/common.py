"""Shared by the model-API benchmarks: the one trained model, process CPU accounting."""

from __future__ import annotations

import os
from pathlib import Path

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
LABELS = ["setosa", "versicolor", "virginica"]
ROW = [5.1, 3.5, 1.4, 0.2]


def train(workdir: Path) -> tuple[object, Path]:
    """Iris logistic regression, fitted once and saved with joblib for every server."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    X, y = load_iris(return_X_y=True)
    clf = LogisticRegression(max_iter=1000).fit(X, y)
    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / "iris.joblib"
    joblib.dump(clf, path)
    return clf, path


def _ticks(pid: int) -> tuple[int, int]:
    """(utime+stime of pid, its parent pid)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12]), int(fields[1])


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds used so far by ``root`` and all its live descendants."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                t, ppid = _ticks(int(name))
            except (FileNotFoundError, ProcessLookupError, IndexError):
                continue
            parents[int(name)] = ppid
            ticks[int(name)] = t
    total = 0
    for pid, t in ticks.items():
        p = pid
        while p > 1:
            if p == root:
                total += t
                break
            p = parents.get(p, 0)
    return total / os.sysconf("SC_CLK_TCK")
