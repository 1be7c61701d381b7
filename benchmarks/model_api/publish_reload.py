"""What publishing a large model costs on the registry side, and how long a running models
service takes to serve it: package (the kernel's side), import into the repository (the
service's side: SHA-256 and rename, no unpickling), and upload-done -> served by a
``ModelServer`` watching the repository with ``--reload-interval``.

    .venv/bin/python benchmarks/model_api/publish_reload.py --mb 50 --interval 2 --repeat 3

The HTTP upload itself is a streamed write to a temporary file (not measured here).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tarfile
import tempfile
import time
from pathlib import Path

import numpy as np
from mlfactory.model_api import Model, ModelRepository
from mlfactory.model_api.auth import NoAuth
from mlfactory.model_api.publishing import package
from mlfactory.model_api.server import ModelServer
from mlfactory.model_api.store import load_repository
from sklearn.linear_model import LinearRegression


def big_model(mb: int) -> Model:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(50, 3))
    reg = LinearRegression().fit(X, X @ np.array([1.0, 2.0, 3.0]))
    reg.padding = rng.normal(size=mb * 1024 * 1024 // 8)  # incompressible bytes
    return Model(reg, task="regression", name="big")


async def one(tmp: Path, model: Model, interval: float) -> dict[str, float]:
    repo = ModelRepository(tmp / "repo")
    server = ModelServer(authorizer=NoAuth())
    await server.load(lambda: load_repository(repo))
    watcher = asyncio.create_task(server.watch(repo, interval=interval))
    await asyncio.sleep(0)
    t0 = time.perf_counter()
    archive = package(model, tmp / "pkg")
    t1 = time.perf_counter()
    staged = tmp / "staged"
    staged.mkdir()
    with tarfile.open(archive) as tf:
        for m in tf.getmembers():
            src = tf.extractfile(m)
            assert src is not None
            (staged / m.name).write_bytes(src.read())
    t2 = time.perf_counter()
    repo.import_package("big", staged, created_by="bench")
    t3 = time.perf_counter()
    while not server.reloads:  # noqa: ASYNC110 - measuring the poll itself
        await asyncio.sleep(0.005)
    t4 = time.perf_counter()
    watcher.cancel()
    server.runner.shutdown()
    return {
        "package_s": t1 - t0,
        "extract_s": t2 - t1,
        "import_s": t3 - t2,
        "served_after_import_s": t4 - t3,
    }


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--mb", type=int, default=50)
    p.add_argument("--interval", type=float, default=2.0)
    p.add_argument("--repeat", type=int, default=3)
    args = p.parse_args()
    model = big_model(args.mb)
    runs = []
    for _ in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            runs.append(asyncio.run(one(Path(tmp), model, args.interval)))
    for r in runs:  # button to served: the kernel's packaging through the service's reload
        r["total_s"] = sum(r.values())
    for key in runs[0]:
        values = [r[key] for r in runs]
        print(
            f"{key:24s} min {min(values):7.3f}  median {statistics.median(values):7.3f}  "
            f"max {max(values):7.3f}"
        )


if __name__ == "__main__":
    main()
