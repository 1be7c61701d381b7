"""Wrapper overhead above the raw ``predict_proba``: single-row iris logistic regression.

    .venv/bin/python benchmarks/model_api/bench_wrapper.py [--n 20000] [--repeat 3]

Interleaves raw and wrapped calls on the same row so machine noise hits both, and reports the
p50 of each and of the per-pair difference; checks that each wrapped call makes exactly one
model call.
"""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import FEATURES, LABELS, ROW, train  # noqa: E402
from mlfactory.model_api import Model  # noqa: E402
from mlfactory.model_api.schemas import records_to_input  # noqa: E402


class CountCalls:
    def __init__(self, est):
        self.est, self.calls = est, 0
        self.classes_ = est.classes_

    def predict_proba(self, x):
        self.calls += 1
        return self.est.predict_proba(x)


def measure(clf, n: int) -> dict[str, float]:
    model = Model(clf, task="classification", name="iris", labels=LABELS, input_schema=FEATURES)
    x = np.array([ROW])
    record = [dict(zip(FEATURES, ROW, strict=True))]
    outputs = ["label", "probabilities"]
    raw, wrapped, records_path = [], [], []
    pc = time.perf_counter_ns
    for _ in range(1000):  # warm up
        clf.predict_proba(x)
        model.predict(x, outputs=outputs)
    gc.collect()
    gc.freeze()
    for _ in range(n):
        t0 = pc()
        clf.predict_proba(x)
        t1 = pc()
        model.predict(x, outputs=outputs).to_records()
        t2 = pc()
        # the server's path: validate a JSON record, run, shape, records
        model.run(records_to_input(record, model.schema), outputs)
        t3 = pc()
        raw.append(t1 - t0)
        wrapped.append(t2 - t1)
        records_path.append(t3 - t2)
    diff = [w - r for w, r in zip(wrapped, raw, strict=True)]
    diff_rec = [w - r for w, r in zip(records_path, raw, strict=True)]
    counting = CountCalls(clf)
    cm = Model(counting, task="classification", name="iris", labels=LABELS, input_schema=FEATURES)
    for _ in range(100):
        cm.predict(x, outputs=outputs)
    return {
        "raw_p50_us": statistics.median(raw) / 1e3,
        "wrapped_p50_us": statistics.median(wrapped) / 1e3,
        "overhead_p50_us": statistics.median(diff) / 1e3,
        "records_path_p50_us": statistics.median(records_path) / 1e3,
        "records_overhead_p50_us": statistics.median(diff_rec) / 1e3,
        "model_calls_per_request": counting.calls / 100,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--n", type=int, default=20000)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    clf, _ = train(Path(tempfile.mkdtemp(prefix="bench-model-api-")))
    for i in range(args.repeat):
        r = measure(clf, args.n)
        print(f"run {i + 1}: " + ", ".join(f"{k}={v:.2f}" for k, v in r.items()))
        assert r["model_calls_per_request"] == 1.0


if __name__ == "__main__":
    main()
