"""Where the models service's CPU goes per ``/predict``: the service (``mlfactory /predict``,
bearer token, as ``bench_http.py`` starts it) under cProfile on its event loop thread, driven
by ``loadgen.py``; prints the top functions by own and cumulative time, per request.

    .venv/bin/python benchmarks/model_api/profile_service.py --concurrency 16 --duration 8

Profiling slows the service several-fold; read the shares, not the absolute times.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import json
import os
import pstats
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_http import TOKEN, bodies, free_port, wait_ok  # noqa: E402
from common import FEATURES, LABELS, train  # noqa: E402


def serve_profiled(out: str, argv: list[str]) -> None:
    """Run the service in this process; on SIGUSR1 write the profile, on SIGTERM exit."""
    from mlfactory.model_api.serve import main

    # CPU time of the event loop's thread: wall time on a loaded machine would count the
    # time the OS ran other processes (a send() preempted looks slow)
    prof = cProfile.Profile(time.thread_time)

    def dump(*_: object) -> None:
        prof.disable()
        prof.dump_stats(out)

    signal.signal(signal.SIGUSR1, dump)
    prof.enable()
    main(argv)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--concurrency", type=int, default=16)
    p.add_argument("--duration", type=float, default=8.0)
    p.add_argument("--top", type=int, default=30)
    p.add_argument("--serve", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.serve:
        serve_profiled(args.serve[0], args.serve[1:])
        return
    work = Path(tempfile.mkdtemp(prefix="bench-profile-"))
    clf, _ = train(work)
    from mlfactory.model_api import Model, ModelRepository

    iris = Model(clf, task="classification", name="iris", labels=LABELS, input_schema=FEATURES)
    ModelRepository(work / "repo").publish(iris, alias="production")
    body_files = bodies(work)
    port = free_port()
    prof_path = str(work / "service.prof")
    cmd = [
        sys.executable,
        __file__,
        "--serve",
        prof_path,
        "--repository",
        str(work / "repo"),
        "--port",
        str(port),
        "--log-level",
        "WARNING",
    ]
    env = {**os.environ, "MLFACTORY_MODEL_API_TOKEN": TOKEN}
    proc = subprocess.Popen(cmd, env=env, start_new_session=True)
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    path = "/v2/models/iris/predict"
    wait_ok(f"http://127.0.0.1:{port}{path}", Path(body_files["predict"]).read_bytes(), headers)
    load = subprocess.run(
        [
            sys.executable,
            str(HERE / "loadgen.py"),
            "--port",
            str(port),
            "--path",
            path,
            "--body-file",
            str(body_files["predict"]),
            "--concurrency",
            str(args.concurrency),
            "--duration",
            str(args.duration),
            "--warmup",
            "0",
            "--header",
            f"Authorization: Bearer {TOKEN}",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    requests = json.loads(load.stdout)["requests"]
    os.kill(proc.pid, signal.SIGUSR1)
    deadline = time.monotonic() + 60
    while not Path(prof_path).exists() and time.monotonic() < deadline:
        time.sleep(0.2)  # the service writes its profile
    time.sleep(1)
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(30)
    for sort in ("tottime", "cumulative"):
        buf = io.StringIO()
        stats = pstats.Stats(prof_path, stream=buf)
        stats.sort_stats(sort).print_stats(args.top)
        print(f"## by {sort} ({requests} requests at c={args.concurrency}; divide by it)")
        print(buf.getvalue())


if __name__ == "__main__":
    main()
