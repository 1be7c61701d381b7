"""``/predict`` through the hub (configurable-http-proxy + the models service's hub token
check) next to the same server called directly and MLServer 1.7.1 called directly, in one
run; then the first request after a publish through the registry.

    .venv/bin/python benchmarks/model_api/through_hub.py --rounds 3 \
        --mlserver-venv /tmp/venv-mlserver --out through-hub.json

A real hub (``mlfactory hub`` with the shipped config, in a throw-away data folder) serves
the registry's folder; the iris model of ``bench_http.py`` is published into it before the
hub starts, and the benchmark's user (``models.users``) calls it with a hub API token made
through the hub's own login and token API. The load generator, bursts, rotation and CPU
accounting are ``bench_http.py``'s (CPU through the hub counts the hub's whole process tree:
proxy, hub and models service).
"""

from __future__ import annotations

import argparse
import http.cookiejar
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_http import bodies, burst, free_port, servers, start, stop, summarize  # noqa: E402
from common import FEATURES, LABELS, ROW, train  # noqa: E402

USER, PASSWORD = "bench", "bench-through-the-hub-1"  # noqa: S105 - a throw-away local account


def start_hub(data: Path) -> tuple[subprocess.Popen, str]:
    """``mlfactory hub`` with the shipped config plus the benchmark's user in models.users."""
    import yaml
    from mlfactory.hub.account_store import AccountStore
    from mlfactory.hub.accounts import hash_password
    from mlfactory.hub.platform_config import PACKAGED_CONFIG, accounts_db_url, prepare_data_dir

    config = yaml.safe_load(PACKAGED_CONFIG.read_text())
    config["models"] = {"users": [USER]}
    config_path = data / "platform.yaml"
    prepare_data_dir(data)
    config_path.write_text(yaml.safe_dump(config))
    store = AccountStore(accounts_db_url(data))
    store.create_account(USER, hash_password(PASSWORD), authorized=True)
    store.close()
    port = free_port()
    env = {
        **os.environ,
        "MLFACTORY_DATA": str(data),
        "MLFACTORY_PORT": str(port),
        "MLFACTORY_CONFIG": str(config_path),
        "MLFACTORY_ADMIN_PASSWORD": "bench-admin-password-1",
        # no container engine or image registry: nobody's server is started here
        "MLFACTORY_BACKEND": "local",
    }
    cmd = [
        str(Path(sys.executable).with_name("mlfactory")),
        "hub",
        f"--JupyterHub.hub_port={free_port()}",
        f"--ConfigurableHTTPProxy.api_url=http://127.0.0.1:{free_port()}",
        "--log-level=WARN",
    ]
    log = open(data / "hub.log", "wb")  # noqa: SIM115 - lives as long as the hub
    proc = subprocess.Popen(
        cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=data, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the hub exited: see {data / 'hub.log'}")
        try:
            with urllib.request.urlopen(f"{url}/hub/login", timeout=5) as r:  # noqa: S310
                if r.status == 200:
                    return proc, url
        except (urllib.error.URLError, ConnectionError):
            pass
        time.sleep(0.5)
    stop(proc)
    raise RuntimeError(f"the hub did not answer: see {data / 'hub.log'}")


def hub_token(url: str) -> str:
    """Log in with the form and ask the hub's token API, as a person would on /hub/token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{url}/hub/login", timeout=30).read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"username": USER, "password": PASSWORD, "_xsrf": xsrf})
    opener.open(f"{url}/hub/login?next=/hub/home", form.encode(), timeout=60).read()
    # the hub issues a new _xsrf cookie for the logged-in session
    xsrf = [c.value for c in jar if c.name == "_xsrf"][-1]
    req = urllib.request.Request(  # noqa: S310 - the benchmark's own local hub
        f"{url}/hub/api/users/{USER}/tokens",
        data=json.dumps({"note": "through_hub benchmark", "expires_in": 3600}).encode(),
        headers={"X-XSRFToken": xsrf, "Content-Type": "application/json"},
    )
    with opener.open(req, timeout=30) as r:
        return json.loads(r.read())["token"]


def call(method: str, url: str, token: str, body: object = None) -> tuple[int, bytes]:
    req = urllib.request.Request(  # noqa: S310 - the benchmark's own local hub
        url,
        data=None if body is None else json.dumps(body).encode(),
        method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - the local hub
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def first_request_after_publish(url: str, token: str, clf, n: int) -> list[dict[str, float]]:
    """Publish through the registry (the Publish button's call), wait until the models
    service serves the new version, then time the first ``/predict`` to it through the hub."""
    from mlfactory.model_api import Model, publish

    out = []
    record = {"records": [dict(zip(FEATURES, ROW, strict=True))]}
    for i in range(n):
        name = f"fresh-{i}"
        model = Model(clf, task="classification", name=name, labels=LABELS, input_schema=FEATURES)
        t0 = time.perf_counter()
        publish(
            model, test_input=np.array([ROW]), registry=f"{url}/services/mlfactory", token=token
        )
        t1 = time.perf_counter()
        ready = f"{url}/services/models/v2/models/{name}/versions/1/ready"
        while call("GET", ready, token)[0] != 200:
            if time.perf_counter() - t1 > 60:
                raise RuntimeError(f"{name} was not served within 60 s of its publish")
            time.sleep(0.05)
        t2 = time.perf_counter()
        status, body = call(
            "POST", f"{url}/services/models/v2/models/{name}/predict", token, record
        )
        t3 = time.perf_counter()
        if status != 200:
            raise RuntimeError(f"first request to {name}: {status} {body[:300]!r}")
        out.append(
            {"publish_s": t1 - t0, "published_to_served_s": t2 - t1, "first_request_s": t3 - t2}
        )
    return out


def process_ticks(root: int) -> dict[str, int]:
    """CPU ticks (user + system) of each process under ``root``, by role: where a request's
    time goes through the hub (proxy, hub, models service, platform service)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            children.setdefault(int(stat.rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    out: dict[str, int] = {}
    todo = [root]
    while todo:
        pid = todo.pop()
        todo += children.get(pid, [])
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        role = next((r for key, r in ROLES if key in cmd), "other")
        out[role] = out.get(role, 0) + int(fields[11]) + int(fields[12])
    return out


ROLES = [
    ("configurable-http-proxy", "proxy (configurable-http-proxy)"),
    ("mlfactory.model_api.serve", "models service"),
    ("mlfactory.service", "platform service"),
    ("jupyterhub", "hub"),
    ("mlfactory hub", "hub"),
]


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--duration", type=float, default=4.0)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--mlserver-venv")
    p.add_argument("--first-requests", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    args.mlflow_venv = None
    work = Path(tempfile.mkdtemp(prefix="bench-through-hub-"))
    work.chmod(0o711)  # the hub makes OS accounts homed in here
    args.work = str(work)
    clf, model_path = train(work)

    from mlfactory.model_api import Model, ModelRepository

    iris = Model(clf, task="classification", name="iris", labels=LABELS, input_schema=FEATURES)
    ModelRepository(work / "repo").publish(iris, alias="production")  # the direct servers'
    data = work / "data"
    ModelRepository(data / "hub" / "models").publish(iris, alias="production")  # the hub's
    body_files = bodies(work)
    specs = [
        s
        for s in servers(args, work, model_path)
        if s["name"] == "mlfactory /predict" or s["name"].startswith("MLServer")
    ]
    hub_proc, url = start_hub(data)
    procs = []
    results: list[dict] = []
    try:
        token = hub_token(url)
        hub_port = int(url.rsplit(":", 1)[1])
        through = {
            "name": "mlfactory /predict through the hub",
            "port": hub_port,
            "path": "/services/models/v2/models/iris/predict",
            "body": "predict",
            "headers": [f"Authorization: token {token}"],
        }
        deadline = time.monotonic() + 120
        while (
            call(
                "POST",
                f"{url}{through['path']}",
                token,
                json.loads(Path(body_files["predict"]).read_text()),
            )[0]
            != 200
        ):
            if time.monotonic() > deadline:
                raise RuntimeError("the models service behind the hub did not answer 200")
            time.sleep(0.5)
        for spec in specs:
            procs.append(start(spec, body_files, args))
        all_specs = [through, *specs]
        all_procs = [hub_proc, *procs]
        for rnd in range(args.rounds):
            print(f"# round {rnd + 1}", flush=True)
            order = list(range(len(all_specs)))
            order = order[rnd % len(order) :] + order[: rnd % len(order)]
            for c in args.concurrency:
                for i in order:
                    before = process_ticks(hub_proc.pid) if i == 0 else {}
                    r = burst(all_specs[i], all_procs[i], c, body_files, args)
                    if i == 0:
                        after = process_ticks(hub_proc.pid)
                        total = r["requests"] / args.duration * (args.duration + args.warmup)
                        hz = os.sysconf("SC_CLK_TCK")
                        r["cpu_us_per_req_by_process"] = {
                            k: (after[k] - before.get(k, 0)) / hz / total * 1e6
                            for k in after
                            if total
                        }
                    r["round"] = rnd + 1
                    results.append(r)
                    print(json.dumps(r), flush=True)
        firsts = first_request_after_publish(url, token, clf, args.first_requests)
    finally:
        for proc in procs:
            stop(proc)
        stop(hub_proc)
    if args.out:
        Path(args.out).write_text(json.dumps({"bursts": results, "first": firsts}, indent=1))
    print(summarize(results))
    print()
    print(ratio_table(results))
    print()
    print(split_table(results))
    print()
    print("| after publish | min | median | max |\n|---|---|---|---|")
    for key in ("publish_s", "published_to_served_s", "first_request_s"):
        xs = [f[key] for f in firsts]
        print(f"| {key} | {min(xs):.3f} | {statistics.median(xs):.3f} | {max(xs):.3f} |")


def split_table(results: list[dict]) -> str:
    """Through the hub: median CPU µs per request of each process, per concurrency."""
    lines = ["| c | process | median CPU µs/req through the hub |", "|---|---|---|"]
    for c in sorted({r["concurrency"] for r in results}):
        rs = [
            r["cpu_us_per_req_by_process"]
            for r in results
            if r["concurrency"] == c and "cpu_us_per_req_by_process" in r
        ]
        for role in sorted({k for r in rs for k in r}):
            lines.append(f"| {c} | {role} | {statistics.median(r.get(role, 0) for r in rs):.0f} |")
    return "\n".join(lines)


def ratio_table(results: list[dict]) -> str:
    """Per round: through-the-hub req/s over the best MLServer configuration's, same round."""
    lines = [
        "| c | through hub ÷ MLServer direct, per round | min | median | max |",
        "|---|---|---|---|---|",
    ]
    for c in sorted({r["concurrency"] for r in results}):
        ratios = []
        for rnd in sorted({r["round"] for r in results}):
            same = [r for r in results if r["round"] == rnd and r["concurrency"] == c]
            hub = [r["rps"] for r in same if r["server"].endswith("through the hub")]
            peer = max((r["rps"] for r in same if r["server"].startswith("MLServer")), default=0)
            if hub and peer:
                ratios.append(hub[0] / peer)
        if ratios:
            lines.append(
                f"| {c} | {', '.join(f'{x:.2f}×' for x in ratios)} | {min(ratios):.2f}× | "
                f"{statistics.median(ratios):.2f}× | {max(ratios):.2f}× |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
