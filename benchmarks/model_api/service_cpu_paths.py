"""The models service's own CPU per ``/predict``, one process reached three ways, to split the
cost of going through the hub:

- **A**, through the proxy: loadgen → configurable-http-proxy → the hub's models service;
- **B**, the same service process on its own port (same hub token check, no proxy);
- **C**, a stand-alone ``mlfactory.model_api.serve`` with token auth (``bench_http.py``'s).

A − B is what the proxy hop costs the service; B − C is the hub token check. User and
system CPU come from ``/proc`` (all threads), per request, at each concurrency.

    .venv/bin/python benchmarks/model_api/service_cpu_paths.py --rounds 2 --duration 6
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import through_hub  # noqa: E402
from bench_http import bodies, burst, servers, start, stop  # noqa: E402
from common import FEATURES, LABELS, train  # noqa: E402


def models_service(hub_pid: int) -> tuple[int, int]:
    """The models service among the hub's processes: its pid and the port the hub routes
    to it."""
    for pid in through_hub.process_tree(hub_pid):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")
            if through_hub.role(argv) != "models service":
                continue
            env = Path(f"/proc/{pid}/environ").read_bytes().decode().split("\0")
        except OSError:
            continue
        url = next(e.split("=", 1)[1] for e in env if e.startswith("JUPYTERHUB_SERVICE_URL="))
        return pid, int(url.rstrip("/").rsplit(":", 1)[1])
    raise RuntimeError(f"no models service under the hub {hub_pid}")


def cpu_ticks(pid: int) -> tuple[int, int]:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]), int(fields[12])


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--duration", type=float, default=6.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    p.add_argument("--workers", type=int, default=4)
    args = p.parse_args()
    args.mlserver_venv = args.mlflow_venv = None
    work = Path(tempfile.mkdtemp(prefix="bench-service-cpu-"))
    work.chmod(0o711)  # the hub makes an OS account homed in here
    args.work = str(work)
    clf, model_path = train(work)

    from mlfactory.model_api import Model, ModelRepository

    iris = Model(clf, task="classification", name="iris", labels=LABELS, input_schema=FEATURES)
    ModelRepository(work / "repo").publish(iris, alias="production")
    body_files = bodies(work)
    data = work / "data-chp"
    ModelRepository(data / "hub" / "models").publish(iris, alias="production")
    hub, url = through_hub.start_hub(data, "chp")
    direct = None
    try:
        token = through_hub.hub_token(url, through_hub.user_for("chp"))
        path = "/services/models/v2/models/iris/predict"
        record = json.loads(Path(body_files["predict"]).read_text())
        deadline = time.monotonic() + 120
        while through_hub.call("POST", f"{url}{path}", token, record)[0] != 200:
            if time.monotonic() > deadline:
                raise RuntimeError("the hub's models service never answered 200")
            time.sleep(0.5)
        service_pid, service_port = models_service(hub.pid)
        headers = [f"Authorization: token {token}"]
        spec_c = next(
            s for s in servers(args, work, model_path) if s["name"] == "mlfactory /predict"
        )
        direct = start(spec_c, body_files, args)
        paths = [
            ({"name": "A through the proxy", "port": int(url.rsplit(":", 1)[1]), "path": path,
              "body": "predict", "headers": headers}, hub, service_pid),
            ({"name": "B the service's own port", "port": service_port, "path": path,
              "body": "predict", "headers": headers}, hub, service_pid),
            ({**spec_c, "name": "C stand-alone, token auth"}, direct, direct.pid),
        ]  # fmt: skip
        hz = os.sysconf("SC_CLK_TCK")
        for rnd in range(args.rounds):
            for c in args.concurrency:
                for spec, proc, pid in paths:
                    user0, sys0 = cpu_ticks(pid)
                    r = burst(spec, proc, c, body_files, args)
                    user1, sys1 = cpu_ticks(pid)
                    total = r["requests"] / args.duration * (args.duration + args.warmup)
                    print(
                        json.dumps(
                            {
                                "round": rnd + 1,
                                "path": spec["name"],
                                "concurrency": c,
                                "req_per_s": round(r["requests"] / args.duration),
                                "service_user_us_per_req": round(
                                    (user1 - user0) / hz / total * 1e6
                                ),
                                "service_sys_us_per_req": round((sys1 - sys0) / hz / total * 1e6),
                            }
                        ),
                        flush=True,
                    )
    finally:
        if direct is not None:
            stop(direct)
        stop(hub)
        through_hub.remove_accounts(work)


if __name__ == "__main__":
    main()
