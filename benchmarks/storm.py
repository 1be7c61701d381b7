"""The storm: N users press Start at once, vanilla JupyterHub against mlfactory's full hub.

Two hubs, in the same run on this machine, one at a time in alternating rounds (A, B, B, A):

* vanilla: ``jupyterhub -f`` (``benchhub.py``) with ``storm_spawner.StubSpawner``;
* mlfactory: ``mlfactory hub`` with the shipped platform config (authenticator, platform
  service, budget gate, pricing, journal, notices) and ``storm_spawner.StormSpawner``, all
  of mlfactory's spawner work except starting a process.

Both spawners point at one stub server. Each round creates ``--users`` users, then every
user's Start goes in at once through the REST API (``POST /users/<u>/server``), following
``Retry-After`` on 429 and the progress stream on 202, as the spawn page does, while an
admin pages through ``/users`` (and, on mlfactory, the service's ``/api/usage`` and
``/api/servers``). Recorded: time until all are ready, spawns/s, POST latency, 429 / 5xx
counts, the gate as the spawner sees it (p50/p99) and as the service does (each call's
time queued behind the others and deciding, from its log), hub / service / proxy CPU and peak RSS
(from /proc), event-loop stalls in the hub (a 50 ms probe) and slow service answers.

``--team-budget N`` puts every user in one team whose hard budget admits exactly N
servers; the run then checks that exactly N start and the rest are refused with the
budget's message.

    .venv/bin/python benchmarks/storm.py --users 1000 --rounds 2
    .venv/bin/python benchmarks/storm.py --users 50 --rounds 1          # smoke run
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import platform
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import yaml
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))
import benchhub  # noqa: E402
from procstat import Procs, Sampler  # noqa: E402

from tests.e2e.conftest import discard_hub, prepare_hub, start_hub, stop_hub, stop_servers  # noqa: E402
from tests.e2e.helpers import rest_token  # noqa: E402

PAGINATION = "application/jupyterhub-pagination+json"
TEAM = "storm"
# Both hubs wait this long for a server to answer (JupyterHub's default is 30 s): with a
# thousand spawns at once on 2 cores the one stub server answers late, not never.
HTTP_TIMEOUT = 300

VANILLA_CONFIG = (
    benchhub.HUB_CONFIG
    + """
c.JupyterHub.spawner_class = "storm_spawner.StubSpawner"
c.JupyterHub.concurrent_spawn_limit = {spawn_limit}
c.JupyterHub.cleanup_servers = True
c.Spawner.http_timeout = {http_timeout}
c.Spawner.start_timeout = {http_timeout}
"""
)


def pct(xs: list[float], p: float) -> float:
    if not xs:
        return float("nan")
    s = sorted(xs)
    return s[min(len(s) - 1, round(p / 100 * (len(s) - 1)))]


# --- the storm ---------------------------------------------------------------------------


@dataclass
class Outcome:
    ready_at: float | None = None
    refused: str | None = None
    failed: str | None = None
    posts: list[float] = field(default_factory=list)
    codes: list[int] = field(default_factory=list)


async def press_start(
    client: AsyncHTTPClient, base: str, token: str, user: str, go: asyncio.Event, t0: list[float]
) -> Outcome:
    """One user's Start, as the spawn page does it over the REST API."""
    out = Outcome()
    headers = {"Authorization": f"token {token}"}
    await go.wait()
    while True:
        t = time.perf_counter()
        r = await _fetch(
            client,
            HTTPRequest(
                f"{base}/hub/api/users/{user}/server",
                method="POST",
                headers=headers,
                body="{}",
                request_timeout=600,
                connect_timeout=300,
            ),
        )
        out.posts.append(time.perf_counter() - t)
        out.codes.append(r.code)
        if r.code == 429:
            await asyncio.sleep(float(r.headers.get("Retry-After") or 1))
            continue
        break
    if r.code == 201:
        out.ready_at = time.perf_counter() - t0[0]
        return out
    if r.code != 202:
        message = _message(r.body)
        if "budget" in message:
            out.refused = message
        else:
            out.failed = f"{r.code}: {message}"
        return out
    # the progress stream until ready or failed; reopened when it ends without a verdict,
    # as the spawn page's EventSource reconnects
    for _ in range(30):
        last = await _progress(client, base, headers, user)
        if last.get("ready"):
            out.ready_at = time.perf_counter() - t0[0]
            return out
        if last.get("failed"):
            message = last.get("message", "")
            if "budget" in message:
                out.refused = message
            else:
                out.failed = message
            return out
        r = await _fetch(client, HTTPRequest(f"{base}/hub/api/users/{user}", headers=headers,
                                             request_timeout=600))  # fmt: skip
        server = json.loads(r.body or b"{}").get("servers", {}).get("") if r.code == 200 else None
        if server and server.get("ready"):
            out.ready_at = time.perf_counter() - t0[0]
            return out
        if r.code == 200 and not (server and server.get("pending")):
            out.failed = "the server stopped without a verdict on the progress stream"
            return out
    out.failed = "no verdict after 30 progress streams"
    return out


async def _fetch(client: AsyncHTTPClient, req: HTTPRequest) -> Any:
    """The answer, or a stand-in 599 when there is none (timeout, connection closed)."""
    try:
        return await client.fetch(req, raise_error=False)
    except (OSError, HTTPClientError) as e:
        return SimpleNamespace(code=599, body=str(e).encode(), headers={})


async def _progress(client: AsyncHTTPClient, base: str, headers: dict, user: str) -> dict:
    """The last event of one progress stream."""
    events: list[dict] = []
    buf = bytearray()

    def chunk(data: bytes) -> None:
        buf.extend(data)
        while b"\n\n" in buf:
            raw, _, rest = bytes(buf).partition(b"\n\n")
            buf[:] = rest
            for line in raw.splitlines():
                if line.startswith(b"data:"):
                    events.append(json.loads(line[5:]))

    await _fetch(
        client,
        HTTPRequest(
            f"{base}/hub/api/users/{user}/server/progress",
            headers=headers,
            streaming_callback=chunk,
            request_timeout=600,
            connect_timeout=300,
        ),
    )
    return events[-1] if events else {}


def _message(body: bytes | None) -> str:
    try:
        return str(json.loads(body or b"{}").get("message", ""))
    except ValueError:
        return (body or b"")[:200].decode("utf-8", "replace")


async def admin_pager(
    client: AsyncHTTPClient, base: str, token: str, service: bool, done: asyncio.Event
) -> dict[str, list[float]]:
    """The dashboard and the culler meanwhile: page through /users, and the service's usage
    and running-servers APIs."""
    headers = {"Authorization": f"token {token}", "Accept": PAGINATION}
    lat: dict[str, list[float]] = {"users_page": [], "usage": [], "servers": [], "errors": []}

    async def get(url: str, key: str) -> dict:
        t = time.perf_counter()
        r = await _fetch(client, HTTPRequest(url, headers=headers, request_timeout=300))
        lat[key].append(time.perf_counter() - t)
        if r.code >= 400:
            lat["errors"].append(r.code)
            return {}
        return json.loads(r.body or b"{}")

    while not done.is_set():
        offset = 0
        while not done.is_set():
            page = await get(f"{base}/hub/api/users?offset={offset}&limit=200", "users_page")
            nxt = (page.get("_pagination") or {}).get("next") if isinstance(page, dict) else None
            if not nxt:
                break
            offset = nxt["offset"]
        if service:
            await get(f"{base}/services/mlfactory/api/usage?by=user", "usage")
            await get(f"{base}/services/mlfactory/api/servers", "servers")
        await asyncio.sleep(0.5)
    return lat


async def storm(base: str, token: str, users: list[str], service: bool) -> dict[str, Any]:
    client = AsyncHTTPClient(force_instance=True, max_clients=len(users) + 8)
    admin_client = AsyncHTTPClient(force_instance=True, max_clients=4)
    go, done = asyncio.Event(), asyncio.Event()
    t0 = [0.0]
    tasks = [asyncio.ensure_future(press_start(client, base, token, u, go, t0)) for u in users]
    pager = asyncio.ensure_future(admin_pager(admin_client, base, token, service, done))
    await asyncio.sleep(0.2)
    t0[0] = time.perf_counter()
    go.set()
    outcomes = await asyncio.gather(*tasks)
    total = time.perf_counter() - t0[0]
    done.set()
    lat = await pager
    client.close()
    admin_client.close()
    return {"outcomes": outcomes, "wall": total, "admin": lat}


# --- the hubs ----------------------------------------------------------------------------


def start_stub(workdir: Path) -> subprocess.Popen:
    port = benchhub.free_port()
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "storm_spawner.py"), str(port)],
        start_new_session=True,  # stop_servers() may signal its group: only it is in there
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.port = port  # type: ignore[attr-defined]
    deadline = time.monotonic() + 30
    import socket

    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return proc
        time.sleep(0.05)
    raise RuntimeError("the stub server did not start")


def env_for(stub: subprocess.Popen, metrics: Path, snapshot: Path | None) -> dict[str, str]:
    env = {
        "STORM_STUB_PORT": str(stub.port),  # type: ignore[attr-defined]
        "STORM_STUB_PID": str(stub.pid),
        "STORM_METRICS": str(metrics),
        "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")]),
    }
    if snapshot is not None:
        env["STORM_TRACEMALLOC"] = str(snapshot)
    return env


def dump_snapshot(hub_pid: int, snapshot: Path) -> None:
    """``--tracemalloc``: have the hub dump what its spawns allocated (and still hold)."""
    snapshot.unlink(missing_ok=True)
    os.kill(hub_pid, signal.SIGUSR2)
    deadline = time.monotonic() + 300
    size = -1
    while time.monotonic() < deadline:
        time.sleep(2)
        now = snapshot.stat().st_size if snapshot.exists() else -1
        if now > 0 and now == size:
            print(f"  tracemalloc snapshot: {snapshot}", flush=True)
            return
        size = now
    raise RuntimeError(f"the hub wrote no snapshot to {snapshot}")


def mlfactory_config(users: list[str], team_budget: int | None) -> dict:
    from mlfactory.hub.platform_config import PACKAGED_CONFIG
    from mlfactory.hub.platform_schema import parse_duration

    data = yaml.safe_load(PACKAGED_CONFIG.read_text())
    if team_budget is not None:
        # one team whose hard budget admits exactly ``team_budget`` one-hour runs (the
        # gate's minimum_run) of its own profile at 1.00 an hour
        profile = dict(next(p for p in data["profiles"] if p["slug"] == "cpu-small"))
        profile.update(slug="storm", display_name="Storm", price_per_hour=1.0, default=False)
        data["profiles"].append(profile)
        hours = parse_duration(str(data["accounting"]["minimum_run"])) / 3600
        data["groups"].append(
            {
                "name": TEAM,
                "description": "A class pressing Start at once",
                "profiles": ["storm"],
                "images": data["groups"][0]["images"],
                "default_profile": "storm",
                "members": users,
                "priority": 100,
                "budget": {
                    "amount": team_budget * hours,
                    "period": "monthly",
                    "enforcement": "block",
                },
            }
        )
    return data


def metrics_of(path: Path) -> dict[str, list]:
    out: dict[str, list] = {"gate": [], "stall": [], "gc": []}
    if path.exists():
        for line in path.read_text().splitlines():
            m = json.loads(line)
            out[m["kind"]].append(m)
    return out


def run_variant(
    variant: str,
    n: int,
    workdir: Path,
    spawn_limit: int,
    team_budget: int | None,
    keep: bool,
    snapshots: Path | None = None,
) -> dict[str, Any]:
    users = [f"u{i:05d}" for i in range(n)]
    stub = start_stub(workdir)
    metrics = workdir / f"{variant}-metrics.jsonl"
    metrics.unlink(missing_ok=True)
    snapshot = snapshots / f"{variant}.tracemalloc" if snapshots else None
    extra_env = env_for(stub, metrics, snapshot)
    try:
        if variant == "vanilla":
            hub = benchhub.BenchHub("vanilla", Path(tempfile.mkdtemp(dir=workdir)))
            hub.start(
                VANILLA_CONFIG.format(
                    **hub.fields(), spawn_limit=spawn_limit, http_timeout=HTTP_TIMEOUT
                ),
                extra_env,
            )
            hub.wait_up(120)
            base, token, pid, log = (
                f"http://127.0.0.1:{hub.port}",
                hub.token,
                hub.proc.pid,
                hub.log_path,
            )
        else:
            saved = {k: os.environ.get(k) for k in extra_env}
            os.environ.update(extra_env)
            try:
                data, cfg = prepare_hub("storm", mlfactory_config(users, team_budget))
                hub = start_hub(
                    data,
                    "--JupyterHub.spawner_class=storm_spawner.StormSpawner",
                    f"--JupyterHub.concurrent_spawn_limit={spawn_limit}",
                    f"--Spawner.http_timeout={HTTP_TIMEOUT}",
                    f"--Spawner.start_timeout={HTTP_TIMEOUT}",
                    config=cfg,
                    timeout=180,
                )
            finally:
                for k, v in saved.items():
                    if v is None:
                        os.environ.pop(k, None)
                    else:
                        os.environ[k] = v
            base, pid, log = hub.url, hub.proc.pid, hub.log_path
            token = rest_token(hub)
        _create_users(base, token, users)
        procs = Procs.find(pid)
        time.sleep(2)  # let the service's first tick and the hub's start-up settle

        async def measured() -> tuple[dict, dict]:
            sampler = Sampler(procs)
            result = await storm(base, token, users, service=variant == "mlfactory")
            return result, sampler.stop()

        result, usage = asyncio.run(measured())
        if snapshot is not None:
            dump_snapshot(pid, snapshot)
        result["procs"] = usage
        result["metrics"] = metrics_of(metrics)
        result["log_errors"] = _log_problems(Path(log))
        if keep:
            print(f"  {variant}: log {log}")
    finally:
        if variant == "vanilla":
            hub.stop()
        elif keep:  # stopped, its data and log kept
            stop_hub(hub)
            stop_servers(hub.data)
        else:
            discard_hub(hub, cfg)
        with contextlib.suppress(ProcessLookupError):  # stop_servers may have ended it
            os.killpg(stub.pid, signal.SIGTERM)
        stub.wait(10)
    return summarise(variant, result, team_budget)


def _create_users(base: str, token: str, users: list[str]) -> None:
    import requests

    for i in range(0, len(users), 200):
        r = requests.post(
            f"{base}/hub/api/users",
            json={"usernames": users[i : i + 200]},
            headers={"Authorization": f"token {token}"},
            timeout=300,
        )
        if r.status_code not in (201, 409):
            raise RuntimeError(f"creating users answered {r.status_code}: {r.text[:300]}")


# ``Accountant.gate_many``'s line per call: its gates, its batch's decision and its wait
GATES_LINE = re.compile(
    r"Gates: (\d+) decided in ([0-9.]+) ms after ([0-9.]+) ms.*?(?:\(a batch of (\d+)\))?$"
)


def _log_problems(log: Path) -> dict[str, Any]:
    """Tracebacks and 5xx lines in a hub's log (the service's output goes there too), and
    JupyterHub's own event-loop monitor ("Event loop was unresponsive for at least …")."""
    text = log.read_text(errors="replace") if log.exists() else ""
    lines = text.splitlines()
    stalls = [
        float(m.group(1))
        for line in lines
        if (m := re.search(r"Event loop was unresponsive for at least ([0-9.]+)s", line))
    ]
    # the service's own account of each gate call (``Accountant.gate_many``)
    gates = [
        (int(m.group(1)), float(m.group(2)), float(m.group(3)), int(m.group(4) or m.group(1)))
        for line in lines
        if (m := GATES_LINE.search(line))
    ]
    problems = [
        line
        for line in lines
        if "Traceback" in line or re.search(r"\b5\d\d (GET|POST|PUT|DELETE) ", line)
    ]
    return {
        "errors": len(problems),
        "first_errors": problems[:3],  # the proxy's 503 lines say why it gave up
        "loop_warnings": len(stalls),
        "loop_worst_s": max(stalls, default=0.0),
        "service_gates": gates,
    }


def summarise(variant: str, r: dict[str, Any], team_budget: int | None) -> dict[str, Any]:
    outs: list[Outcome] = r["outcomes"]
    ready = [o.ready_at for o in outs if o.ready_at is not None]
    posts = [p for o in outs for p in o.posts]
    codes = [c for o in outs for c in o.codes]
    gates = [m["ms"] for m in r["metrics"]["gate"]]
    stalls = [m["ms"] for m in r["metrics"]["stall"]]
    collections = r["metrics"]["gc"]
    full = [m["ms"] for m in collections if m["generation"] == 2]
    calls = r["log_errors"]["service_gates"]
    # per spawn: its call's time in the service (queued behind other calls, then decided)
    in_service = [took + waited for n, took, waited, _ in calls for _ in range(n)]
    decided = sum(n for n, _, _, _ in calls)
    # calls waiting together are decided as one batch; each logs the batch's time and size
    batch_ms = sum(took * n / together for n, took, _, together in calls)
    s = {
        "variant": variant,
        "users": len(outs),
        "ready": len(ready),
        "refused": sum(1 for o in outs if o.refused),
        "failed": sum(1 for o in outs if o.failed),
        "failures": [o.failed for o in outs if o.failed][:3],
        "refusal": next((o.refused for o in outs if o.refused), None),
        "all_ready_s": max(ready) if ready else float("nan"),
        "spawns_per_s": len(ready) / max(ready) if ready else 0.0,
        "post_p50_ms": pct(posts, 50) * 1000,
        "post_p99_ms": pct(posts, 99) * 1000,
        "n_429": codes.count(429),
        "n_5xx": sum(1 for c in codes if c >= 500),
        "gate_p50_ms": pct(gates, 50),
        "gate_p99_ms": pct(gates, 99),
        "service_gate_calls": len(calls),
        "service_gate_p50_ms": pct(in_service, 50),
        "service_gate_p99_ms": pct(in_service, 99),
        "service_ms_per_decision": batch_ms / decided if decided else math.nan,
        "service_batches": round(sum(n / together for n, _, _, together in calls)),
        "hub_stalls": len(stalls),
        "hub_worst_stall_ms": max(stalls, default=0.0),
        "hub_gc_total_ms": sum(m["ms"] for m in collections),
        "hub_full_gcs": len(full),
        "hub_worst_full_gc_ms": max(full, default=0.0),
        "log_problems": r["log_errors"]["errors"],
        "first_errors": r["log_errors"]["first_errors"],
        "hub_loop_warnings": r["log_errors"]["loop_warnings"],
        "hub_loop_worst_ms": r["log_errors"]["loop_worst_s"] * 1000,
        "admin_users_page_p50_ms": pct(r["admin"]["users_page"], 50) * 1000,
        "admin_users_page_max_ms": max(r["admin"]["users_page"], default=float("nan")) * 1000,
        "service_api_p50_ms": pct(r["admin"]["usage"] + r["admin"]["servers"], 50) * 1000,
        "service_api_max_ms": max(r["admin"]["usage"] + r["admin"]["servers"], default=float("nan"))
        * 1000,
        "admin_errors": len(r["admin"]["errors"]),
    }
    for name, u in r["procs"].items():
        s[f"{name}_cores"] = u["cores"]
        s[f"{name}_cpu_s"] = u["cpu_s"]
        s[f"{name}_peak_rss_mib"] = u["peak_rss_mib"]
    if team_budget is not None and variant == "mlfactory":
        s["budget_holds"] = s["ready"] == team_budget and s["refused"] == len(outs) - team_budget
    return s


FIGURES = [
    "ready",
    "refused",
    "failed",
    "all_ready_s",
    "spawns_per_s",
    "post_p50_ms",
    "post_p99_ms",
    "n_429",
    "n_5xx",
    "gate_p50_ms",
    "gate_p99_ms",
    "service_gate_calls",
    "service_batches",
    "service_gate_p50_ms",
    "service_gate_p99_ms",
    "service_ms_per_decision",
    "hub_stalls",
    "hub_worst_stall_ms",
    "hub_gc_total_ms",
    "hub_full_gcs",
    "hub_worst_full_gc_ms",
    "log_problems",
    "hub_loop_warnings",
    "hub_loop_worst_ms",
    "admin_users_page_p50_ms",
    "admin_users_page_max_ms",
    "service_api_p50_ms",
    "service_api_max_ms",
    "admin_errors",
    "hub_cores",
    "hub_peak_rss_mib",
    "proxy_cores",
    "proxy_peak_rss_mib",
    "service_cores",
    "service_peak_rss_mib",
]


def report(results: list[dict[str, Any]]) -> None:
    def col(variant: str, key: str) -> str:
        xs = [r[key] for r in results if r["variant"] == variant and key in r]
        xs = [x for x in xs if x == x]  # no NaN
        if not xs:
            return "—"
        if len(xs) == 1:
            return f"{xs[0]:.4g}"
        return f"{min(xs):.4g} / {statistics.median(xs):.4g} / {max(xs):.4g}"

    print(f"\n{'figure (min / median / max)':28} {'vanilla':>30} {'mlfactory':>30}")
    for key in FIGURES:
        print(f"{key:28} {col('vanilla', key):>30} {col('mlfactory', key):>30}")
    v = [r for r in results if r["variant"] == "vanilla"]
    m = [r for r in results if r["variant"] == "mlfactory"]
    if v and m:
        ratio = statistics.median(r["all_ready_s"] for r in m) / statistics.median(
            r["all_ready_s"] for r in v
        )
        mem = statistics.median(
            r["hub_peak_rss_mib"] + r.get("service_peak_rss_mib", 0) for r in m
        ) / statistics.median(r["hub_peak_rss_mib"] for r in v)
        print(f"\nall ready, mlfactory / vanilla (medians): {ratio:.2f}  (target ≤ 1.10)")
        print(f"memory, mlfactory hub + service / vanilla hub (medians): {mem:.2f}  (target ≤ 1.5)")
    for r in m:
        if "budget_holds" in r:
            print(f"budget holds: {r['budget_holds']} ({r['ready']} ready, {r['refused']} refused)")
            print(f"  refusal: {r['refusal']}")
    for r in results:
        if r["failures"]:
            print(f"{r['variant']} failures: {r['failures']}")
            print(f"{r['variant']} log: {r['first_errors']}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--users", type=int, default=1000)
    ap.add_argument("--rounds", type=int, default=2, help="rounds of both hubs, A B then B A")
    ap.add_argument(
        "--spawn-limit", type=int, default=0, help="concurrent_spawn_limit of both hubs (0: none)"
    )
    ap.add_argument(
        "--team-budget", type=int, help="all users in one team whose budget admits this many"
    )
    ap.add_argument("--only", choices=["vanilla", "mlfactory"], help="run one hub only")
    ap.add_argument("--keep", action="store_true", help="keep the hubs' data and logs")
    ap.add_argument("--json", help="write every round's figures here")
    ap.add_argument(
        "--tracemalloc",
        type=Path,
        help="diagnosis (slows the hubs): each hub traces what its spawns allocate and dumps "
        "a tracemalloc snapshot into this folder once all are ready (analyse with tracemalloc)",
    )
    args = ap.parse_args()
    if args.tracemalloc:
        args.tracemalloc.mkdir(parents=True, exist_ok=True)

    print(
        f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
        f"Python {platform.python_version()}, load {os.getloadavg()[0]:.2f}"
    )
    workdir = Path(tempfile.mkdtemp(prefix="mlf-storm-"))
    workdir.chmod(0o711)
    results = []
    try:
        for rnd in range(args.rounds):
            order = ["vanilla", "mlfactory"] if rnd % 2 == 0 else ["mlfactory", "vanilla"]
            for variant in order:
                if args.only and variant != args.only:
                    continue
                t = time.perf_counter()
                r = run_variant(
                    variant,
                    args.users,
                    workdir,
                    args.spawn_limit,
                    args.team_budget,
                    args.keep,
                    args.tracemalloc,
                )
                r["round"] = rnd
                results.append(r)
                print(
                    f"round {rnd} {variant}: {r['ready']}/{r['users']} ready in "
                    f"{r['all_ready_s']:.2f} s, {r['refused']} refused, {r['failed']} failed "
                    f"({time.perf_counter() - t:.0f} s with set-up; load {os.getloadavg()[0]:.2f})",
                    flush=True,
                )
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    report(results)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
