"""HTTP throughput and latency: mlfactory's server vs MLServer, MLflow and a bare tornado floor.

    .venv/bin/python benchmarks/model_api/bench_http.py --rounds 4 \
        --mlserver-venv /tmp/venv-mlserver --mlflow-venv /tmp/venv-mlflow

Same trained iris logistic regression (one joblib file) behind every server, single-row
requests asking for the label and the probabilities, concurrency 1 and 16, closed loop
(``loadgen.py`` in its own process). All servers stay up; the load goes to one at a time in
short bursts, in a rotating order, so other work on the machine hits every server of a round
alike. CPU seconds of a server's whole process tree are read from /proc around each burst to
give CPU per request. MLServer and MLflow live in their own virtual environments (never in
the project's).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from common import FEATURES, LABELS, ROW, train, tree_cpu_seconds  # noqa: E402

TOKEN = "bench-token"  # noqa: S105 - a throwaway token for a local benchmark


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_ok(url: str, body: bytes | None, headers: dict, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            req = urllib.request.Request(url, data=body, headers=headers)  # noqa: S310 - http
            with urllib.request.urlopen(req, timeout=5) as r:  # noqa: S310 - localhost
                if r.status == 200:
                    return
        except Exception as e:  # noqa: BLE001 - not up yet
            last = e
        time.sleep(0.5)
    raise RuntimeError(f"{url} did not answer 200 within {timeout}s: {last}")


def bodies(work: Path) -> dict[str, Path]:
    record = dict(zip(FEATURES, ROW, strict=True))
    payloads = {
        "predict": {"records": [record], "outputs": ["label", "probabilities"]},
        "infer": {
            "inputs": [{"name": "input", "datatype": "FP64", "shape": [1, 4], "data": ROW}],
            "outputs": [{"name": "label"}, {"name": "probabilities"}],
        },
        "floor": {"records": [record]},
        "mlserver": {
            "inputs": [{"name": "input-0", "datatype": "FP64", "shape": [1, 4], "data": ROW}],
            "outputs": [{"name": "predict"}, {"name": "predict_proba"}],
        },
        "mlflow": {"dataframe_split": {"columns": FEATURES, "data": [ROW]}},
    }
    out = {}
    for k, v in payloads.items():
        p = work / f"body-{k}.json"
        p.write_text(json.dumps(v))
        out[k] = p
    return out


def servers(args, work: Path, model_path: Path) -> list[dict]:
    py = sys.executable
    repo = work / "repo"
    specs = []
    auth = [f"Authorization: Bearer {TOKEN}"]
    env = {**os.environ, "MLFACTORY_MODEL_API_TOKEN": TOKEN}

    def ours(name: str, path: str, body: str, execution: str) -> dict:
        port = free_port()
        cmd = [
            py,
            "-m",
            "mlfactory.model_api.serve",
            "--repository",
            str(repo),
            "--port",
            str(port),
            "--log-level",
            "WARNING",
            "--workers",
            str(args.workers),
            "--execution",
            execution,
        ]
        return {
            "name": name,
            "cmd": cmd,
            "port": port,
            "env": env,
            "path": path,
            "body": body,
            "headers": auth,
        }

    specs.append(ours("mlfactory /predict", "/v2/models/iris/predict", "predict", "auto"))
    specs.append(ours("mlfactory /infer (OIP)", "/v2/models/iris/infer", "infer", "auto"))
    specs.append(
        ours(
            "mlfactory /predict --execution thread", "/v2/models/iris/predict", "predict", "thread"
        )
    )
    port = free_port()
    specs.append(
        {
            "name": "bare tornado floor",
            "port": port,
            "path": "/predict",
            "body": "floor",
            "cmd": [py, str(HERE / "floor_server.py"), str(model_path), str(port)],
            "headers": [],
        }
    )
    if args.mlserver_venv:
        for workers in (1, 0):
            port = free_port()
            d = work / f"mlserver-{workers}"
            (d / "iris").mkdir(parents=True, exist_ok=True)
            (d / "settings.json").write_text(
                json.dumps(
                    {
                        "http_port": port,
                        "grpc_port": free_port(),
                        "metrics_port": free_port(),
                        "parallel_workers": workers,
                        "debug": False,
                    }
                )
            )
            (d / "iris" / "model-settings.json").write_text(
                json.dumps(
                    {
                        "name": "iris",
                        "implementation": "mlserver_sklearn.SKLearnModel",
                        "parameters": {"uri": str(model_path), "version": "1"},
                    }
                )
            )
            label = "default: 1 worker process" if workers == 1 else "parallel_workers=0"
            specs.append(
                {
                    "name": f"MLServer 1.7.1 ({label})",
                    "port": port,
                    "body": "mlserver",
                    "path": "/v2/models/iris/infer",
                    "headers": [],
                    "cmd": [str(Path(args.mlserver_venv) / "bin" / "mlserver"), "start", str(d)],
                }
            )
    if args.mlflow_venv:
        mlflow_py = str(Path(args.mlflow_venv) / "bin" / "python")
        mdir = work / "mlflow-model"
        if not mdir.exists():
            subprocess.run(
                [mlflow_py, str(HERE / "mlflow_model.py"), str(model_path), str(mdir)],
                check=True,
                capture_output=True,
            )
        port = free_port()
        # mlflow execs uvicorn by name: its venv's bin goes first on PATH
        path_env = {
            **os.environ,
            "PATH": f"{Path(args.mlflow_venv) / 'bin'}{os.pathsep}{os.environ['PATH']}",
        }
        specs.append(
            {
                "name": "MLflow 3.17 scoring server",
                "port": port,
                "body": "mlflow",
                "path": "/invocations",
                "headers": [],
                "env": path_env,
                "cmd": [
                    str(Path(args.mlflow_venv) / "bin" / "mlflow"),
                    "models",
                    "serve",
                    "-m",
                    str(mdir),
                    "--env-manager",
                    "local",
                    "-p",
                    str(port),
                    "-w",
                    "1",
                ],
            }
        )
    return specs


def start(spec: dict, body_files: dict, args) -> subprocess.Popen:
    log = open(Path(args.work) / f"{spec['name'].split()[0]}.log", "a")  # noqa: SIM115
    proc = subprocess.Popen(
        spec["cmd"], env=spec.get("env"), stdout=log, stderr=log, start_new_session=True
    )
    headers = dict(h.split(": ", 1) for h in spec["headers"])
    headers["Content-Type"] = "application/json"
    body = Path(body_files[spec["body"]]).read_bytes()
    wait_ok(f"http://127.0.0.1:{spec['port']}{spec['path']}", body, headers)
    return proc


def burst(spec: dict, proc: subprocess.Popen, c: int, body_files: dict, args) -> dict:
    cmd = [
        sys.executable,
        str(HERE / "loadgen.py"),
        "--port",
        str(spec["port"]),
        "--path",
        spec["path"],
        "--body-file",
        str(body_files[spec["body"]]),
        "--concurrency",
        str(c),
        "--duration",
        str(args.duration),
        "--warmup",
        str(args.warmup),
    ]
    for h in spec["headers"]:
        cmd += ["--header", h]
    cpu0 = tree_cpu_seconds(proc.pid)
    out = subprocess.run(cmd, capture_output=True, text=True, check=True)
    cpu1 = tree_cpu_seconds(proc.pid)
    r = json.loads(out.stdout)
    total = r["requests"] / args.duration * (args.duration + args.warmup)
    r["server_cpu_us_per_req"] = (cpu1 - cpu0) / total * 1e6 if total else None
    r["server"] = spec["name"]
    return r


def stop(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=4)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    p.add_argument("--workers", type=int, default=4, help="mlfactory model threads")
    p.add_argument("--mlserver-venv")
    p.add_argument("--mlflow-venv")
    p.add_argument("--only", help="substring of the server names to run")
    p.add_argument("--work", default=None)
    p.add_argument("--out", default=None, help="write all results as JSON here")
    p.add_argument("--summarize", help="only print the tables of a previous --out file")
    args = p.parse_args()
    if args.summarize:
        print(summarize(json.loads(Path(args.summarize).read_text())))
        return
    work = Path(args.work or tempfile.mkdtemp(prefix="bench-model-api-"))
    args.work = str(work)
    clf, model_path = train(work)

    from mlfactory.model_api import Model, ModelRepository

    repo = ModelRepository(work / "repo")
    if not repo.versions("iris"):
        repo.publish(
            Model(clf, task="classification", name="iris", labels=LABELS, input_schema=FEATURES),
            alias="production",
        )
    body_files = bodies(work)
    specs = [s for s in servers(args, work, model_path) if not args.only or args.only in s["name"]]
    all_results = []
    # Every server runs for the whole benchmark (idle ones cost nothing) and the load moves
    # from one to the next in short bursts, in a rotating order: load from other work on the
    # machine then hits all servers of a round alike.
    procs = []
    try:
        for spec in specs:
            procs.append(start(spec, body_files, args))
        for rnd in range(args.rounds):
            print(f"# round {rnd + 1}", flush=True)
            order = list(range(len(specs)))
            order = order[rnd % len(order) :] + order[: rnd % len(order)]
            for c in args.concurrency:
                for i in order:
                    r = burst(specs[i], procs[i], c, body_files, args)
                    r["round"] = rnd + 1
                    all_results.append(r)
                    print(json.dumps(r), flush=True)
    finally:
        for proc in procs:
            stop(proc)
    if args.out:
        Path(args.out).write_text(json.dumps(all_results, indent=1))
    print(summarize(all_results))


def summarize(results: list[dict]) -> str:
    """Per round: every run; then the median over rounds, and per round mlfactory's req/s over
    the best peer's in that same round (noise from other work on the machine hits a round as a
    whole, so same-round ratios are steadier than ratios of medians)."""
    import statistics

    lines = [
        "| server | c | req/s | p50 ms | p99 ms | server CPU µs/req | round |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        lines.append(
            f"| {r['server']} | {r['concurrency']} | {r['rps']:.0f} | {r['p50_ms']:.2f} | "
            f"{r['p99_ms']:.2f} | {r['server_cpu_us_per_req']:.0f} | {r['round']} |"
        )
    lines += [
        "",
        "| server | c | median req/s | median p50 ms | median p99 ms | median CPU µs/req |",
        "|---|---|---|---|---|---|",
    ]
    keys = list(dict.fromkeys((r["server"], r["concurrency"]) for r in results))
    for name, c in keys:
        rs = [r for r in results if r["server"] == name and r["concurrency"] == c]
        med = {
            k: statistics.median(r[k] for r in rs)
            for k in ("rps", "p50_ms", "p99_ms", "server_cpu_us_per_req")
        }
        lines.append(
            f"| {name} | {c} | {med['rps']:.0f} | {med['p50_ms']:.2f} | "
            f"{med['p99_ms']:.2f} | {med['server_cpu_us_per_req']:.0f} |"
        )
    peers = {r["server"] for r in results if r["server"].startswith(("MLServer", "MLflow"))}
    ours = [n for n in dict.fromkeys(r["server"] for r in results) if n.startswith("mlfactory")]
    if peers:
        lines += [
            "",
            "| mlfactory server | c | req/s ÷ best peer's, per round | median |",
            "|---|---|---|---|",
        ]
        for name in ours:
            for c in sorted({r["concurrency"] for r in results}):
                ratios = []
                for rnd in sorted({r["round"] for r in results}):
                    same = [r for r in results if r["round"] == rnd and r["concurrency"] == c]
                    mine = [r["rps"] for r in same if r["server"] == name]
                    best = max((r["rps"] for r in same if r["server"] in peers), default=0)
                    if mine and best:
                        ratios.append(mine[0] / best)
                if ratios:
                    lines.append(
                        f"| {name} | {c} | {', '.join(f'{x:.2f}×' for x in ratios)} | "
                        f"{statistics.median(ratios):.2f}× |"
                    )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
