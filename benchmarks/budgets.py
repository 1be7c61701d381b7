"""Budget gate latency and a month's usage report on SQLite and PostgreSQL (issue 4).

A ledger for one month: 10,000 users, each in 2 of 100 groups and charging 3 of 200
projects, 1,000,000 sessions of 10 min to 8 h (about 50 still running), each session with
its 2 group rows. The database is built by the service's alembic migrations, loaded in
bulk (timed), then:

* the gate: ``Accountant.gate`` end to end (the lock, the worker thread, the SQL, and the
  INSERT of the admitted session) for random users, each with a user budget (the default),
  2 group budgets and a project budget; p50/p99 over ``--gates`` calls after a warm-up.
  With ``--http`` also over HTTP to the service's tornado app in this process: ``POST
  /api/gate`` from a plain tornado client, and the hub's own gate client (``ServiceGate``,
  as a spawner calls it).
* the report: ``Store.usage`` by user, group, project, profile and day over the month,
  everyone visible, each ``--repeat`` times.

PostgreSQL runs as a throw-away cluster in a temporary directory (``tests/pg.py``; unix
socket only), with the server's default durability settings unless ``--pg-fast``.

    .venv/bin/python benchmarks/budgets.py --http                # both backends, full size
    .venv/bin/python benchmarks/budgets.py --before 0001 --explain  # indexes: before/after
    .venv/bin/python benchmarks/budgets.py --backends sqlite --rows 100000 --gates 100
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform as pyplatform
import random
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import yaml
from mlfactory.hub.platform_config import PACKAGED_CONFIG, parse_platform_config
from mlfactory.service.accounting import Accountant, GateRequest
from mlfactory.service.alerts import Notifier
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.ledger_sql import G, L
from mlfactory.service.periods import day_starts, period_bounds
from mlfactory.service.store import Store, Visibility
from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pg import PostgresCluster  # noqa: E402  (no pytest in there)

NOW = datetime(2026, 11, 28, 15, 0, tzinfo=UTC).timestamp()
PROFILES = {"cpu-small": 0.05, "cpu-medium": 0.2, "cpu-large": 0.8, "gpu-t4": 1.6}
DIMENSIONS = ("user", "group", "project", "profile", "day")


def config(groups: int, projects: int):
    """The shipped config with a budget on every group and project (all high: gates pass)."""
    data = yaml.safe_load(PACKAGED_CONFIG.read_text())
    base = data["groups"][0]
    budget = {"amount": 1e9, "period": "monthly", "enforcement": "block"}
    data["groups"] = [
        {**base, "name": f"team-{g:03d}", "budget": budget, "members": []} for g in range(groups)
    ]
    data["projects"] = [
        {"name": f"proj-{p:03d}", "display_name": f"P{p}", "budget": budget}
        for p in range(projects)
    ]
    data["default_budget"] = {"amount": 1e9, "period": "monthly", "enforcement": "block"}
    data["default_group"] = "team-000"
    data.setdefault("accounting", {})["timezone"] = "UTC"
    return parse_platform_config(data, "benchmark")


class Population:
    def __init__(self, users: int, groups: int, projects: int, seed: int = 4) -> None:
        rnd = random.Random(seed)
        self.users = [f"user-{i:05d}" for i in range(users)]
        self.groups_of = {}
        self.projects_of = {}
        for i, u in enumerate(self.users):
            g1 = i % groups
            g2 = (g1 + 1 + rnd.randrange(groups - 1)) % groups
            self.groups_of[u] = (f"team-{g1:03d}", f"team-{g2:03d}")
            self.projects_of[u] = [f"proj-{rnd.randrange(projects):03d}" for _ in range(3)]


def sessions(pop: Population, rows: int, running: int, seed: int = 5):
    """Chunks of (session rows, group rows) for the month up to NOW."""
    rnd = random.Random(seed)
    start, _ = period_bounds("monthly", NOW, UTC)
    names = list(PROFILES)
    chunk, groups = [], []
    for i in range(1, rows + 1):
        user = pop.users[rnd.randrange(len(pop.users))]
        length = 600 * (48 ** rnd.random())  # 10 min .. 8 h, log-uniform
        is_running = i > rows - running
        if is_running:
            started = NOW - rnd.uniform(60, 8 * 3600)
        else:
            started = rnd.uniform(start - 8 * 3600, NOW - length)
        profile = names[rnd.randrange(len(names))]
        chunk.append(
            {
                "id": i,
                "key": f"s-{i:08d}",
                "user": user,
                "server_name": "" if rnd.random() < 0.8 else "gpu",
                "project": rnd.choice(pop.projects_of[user]),
                "profile": profile,
                "resources": {"cpu": 1, "memory": "4Gi"},
                "price_per_hour": PROFILES[profile],
                "started": started,
                "ended": None if is_running else started + length,
                "last_seen": NOW if is_running else started + length,
                "end_reason": None if is_running else "stopped",
            }
        )
        groups += [{"session_id": i, "group": g} for g in pop.groups_of[user]]
        if len(chunk) == 20_000:
            yield chunk, groups
            chunk, groups = [], []
    if chunk:
        yield chunk, groups


def load(engine, pop: Population, rows: int, running: int) -> float:
    t0 = time.perf_counter()
    for chunk, groups in sessions(pop, rows, running):
        with engine.begin() as conn:
            conn.execute(L.insert(), chunk)
            conn.execute(G.insert(), groups)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            conn.execute(text(f"SELECT setval('ledger_sessions_id_seq', {rows})"))
            conn.execute(text("ANALYZE"))  # what autovacuum does after a load
    return time.perf_counter() - t0


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def summary(samples: list[float]) -> dict:
    ms = [x * 1000 for x in samples]
    return {
        "n": len(ms),
        "p50_ms": round(statistics.median(ms), 3),
        "p99_ms": round(pct(ms, 99), 3),
        "max_ms": round(max(ms), 3),
    }


async def gate_bench(acc: Accountant, pop: Population, n: int, warmup: int, tag: str) -> dict:
    rnd = random.Random(7)
    out = []
    for i in range(warmup + n):
        user = pop.users[rnd.randrange(len(pop.users))]
        req = GateRequest(
            key=f"{tag}-{i:06d}",
            user=user,
            server_name=f"b{i}",
            project=pop.projects_of[user][0],
            profile="cpu-small",
            price_per_hour=0.05,
            groups=pop.groups_of[user],
        )
        t0 = time.perf_counter()
        verdict = await acc.gate(req)
        dt = time.perf_counter() - t0
        assert verdict.allowed, verdict.message
        await acc.end(req.key, None, "benchmark")  # untimed: keep ~50 servers running
        if i >= warmup:
            out.append(dt)
    return summary(out)


async def http_gate_bench(
    acc: Accountant, pop: Population, n: int, warmup: int, tag: str, via: str = "tornado"
):
    """``via="tornado"``: ``POST /api/gate`` from a plain tornado client (a connection per
    call); ``via="hub"``: the hub's own gate client (``ServiceGate``: ``/api/gates``, the
    hub's kept-alive aiohttp client), as a spawner calls it."""
    import socket
    from types import SimpleNamespace

    from jupyterhub.services.auth import HubOAuth
    from mlfactory.model_api import resolver
    from mlfactory.service.app import make_app
    from mlfactory.spawner.budget_gate import ServiceGate
    from tornado.httpclient import AsyncHTTPClient
    from tornado.httpserver import HTTPServer

    prefix = "/services/mlfactory/"
    hub_auth = HubOAuth(
        api_url="http://127.0.0.1:9/hub/api",
        api_token="unused",  # noqa: S106  (never sent: the gate uses the secret)
        base_url=prefix,
        hub_prefix="/hub/",
        oauth_client_id="service-mlfactory",
        cache_max_age=0,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = HTTPServer(make_app(acc, hub_auth, prefix=prefix, secret="bench"))  # noqa: S106
    server.listen(port, "127.0.0.1")
    resolver.install()  # the client resolves as the hub's does (hub_config installs it)
    client = AsyncHTTPClient(force_instance=True)
    url = f"http://127.0.0.1:{port}{prefix}api/gate"
    gate = ServiceGate(f"http://127.0.0.1:{port}{prefix}", "bench", "refuse-all")
    rnd = random.Random(8)
    out = []
    try:
        for i in range(warmup + n):
            user = pop.users[rnd.randrange(len(pop.users))]
            body = {
                "key": f"{tag}-{i:06d}",
                "user": user,
                "server_name": f"h{i}",
                "project": pop.projects_of[user][0],
                "profile": "cpu-small",
                "price_per_hour": 0.05,
                "groups": list(pop.groups_of[user]),
            }
            if via == "hub":
                spawner = SimpleNamespace(ledger={**body, "resources": {"cpu": 1}})
                t0 = time.perf_counter()
                refusal = await gate(spawner, SimpleNamespace(price_per_hour=0.05))
                dt = time.perf_counter() - t0
                assert refusal is None, refusal
            else:
                t0 = time.perf_counter()
                resp = await client.fetch(
                    url,
                    method="POST",
                    body=json.dumps(body),
                    headers={"Authorization": "secret bench"},
                )
                dt = time.perf_counter() - t0
                assert json.loads(resp.body)["allowed"], resp.body
            await acc.end(body["key"], None, "benchmark")
            if i >= warmup:
                out.append(dt)
    finally:
        client.close()
        server.stop()
    return summary(out)


def report_bench(store: Store, repeat: int) -> dict[str, list[float]]:
    start, end = period_bounds("monthly", NOW, UTC)
    days = day_starts(start, end, UTC)
    out: dict[str, list[float]] = {}
    for dim in DIMENSIONS:
        for _ in range(repeat):
            t0 = time.perf_counter()
            rows = store.usage(dim, start, end, NOW, Visibility(everyone=True), days)
            out.setdefault(dim, []).append(round((time.perf_counter() - t0) * 1000, 1))
            assert rows, dim
    return out


def explain(engine) -> None:
    """Print the plans of the gate's and the report's queries."""
    start, end = period_bounds("monthly", NOW, UTC)
    store = Store(engine)
    captured: list[tuple[str, dict]] = []

    from sqlalchemy import event

    def grab(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", grab)
    store.spend("user", start, end, NOW, ["user-00042"], 3600)
    store.spend("group", start, end, NOW, ["team-001", "team-002"], 3600)
    store.spend("project", start, end, NOW, ["proj-007"], 3600)
    days = day_starts(start, end, UTC)
    for dim in DIMENSIONS:
        store.usage(dim, start, end, NOW, Visibility(everyone=True), days)
    event.remove(engine, "before_cursor_execute", grab)
    prefix = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN ANALYZE "
    raw = engine.raw_connection()
    try:
        for statement, params in captured:
            cur = raw.cursor()
            cur.execute(prefix + statement, params)
            print("---", " ".join(statement.split())[:160])
            for row in cur.fetchall():
                print("   ", " | ".join(str(x) for x in row))
            cur.close()
    finally:
        raw.close()


def alembic_upgrade(engine, target: str) -> None:
    from alembic import command
    from alembic.config import Config
    from mlfactory.service.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, target)


async def run_backend(name: str, url: str, args, pop: Population, cfg) -> dict:
    engine = make_engine(url)
    alembic_upgrade(engine, args.before or "head")
    result: dict = {"backend": name}
    result["load_s"] = round(load(engine, pop, args.rows, args.running), 1)
    print(f"[{name}] loaded {args.rows:,} sessions in {result['load_s']} s", flush=True)
    if args.before:
        result[f"at {args.before}"] = await measure(
            f"{name} at {args.before}", engine, args, pop, cfg
        )
        t0 = time.perf_counter()
        upgrade(engine)
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:
                conn.execute(text("ANALYZE"))
        result["upgrade_s"] = round(time.perf_counter() - t0, 1)
        print(f"[{name}] upgraded to head in {result['upgrade_s']} s", flush=True)
    result["at head"] = await measure(f"{name} at head", engine, args, pop, cfg)
    engine.dispose()
    return result


async def measure(name: str, engine, args, pop: Population, cfg) -> dict:
    result: dict = {}
    store = Store(engine)
    acc = Accountant(store, cfg, notifier=Notifier(cfg.alerts), clock=lambda: NOW)
    t0 = time.perf_counter()
    await acc.start()  # builds the daily totals from the ledger on first start
    result["start_s"] = round(time.perf_counter() - t0, 1)
    print(f"[{name}] service start (daily totals built): {result['start_s']} s", flush=True)
    if engine.dialect.name == "postgresql":
        # What autovacuum does to tables after a bulk load (PostgreSQL 13+ vacuums after
        # inserts too): statistics, and the visibility map that lets the covering indexes
        # answer without reading the table, as in a database that has been running a while.
        # A fresh load left to autovacuum is vacuumed at some point of the runs, or not.
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
    # in process and over HTTP alternate: each gate leaves a session in the ledger (and a
    # dead row behind its end), so a later run meets a bigger table than an earlier one
    for r in range(args.repeat):
        g = await gate_bench(acc, pop, args.gates, args.warmup, f"g{r}-{len(name)}{name[-4:]}")
        result.setdefault("gate", []).append(g)
        print(f"[{name}] gate run {r + 1}: {g}", flush=True)
        if args.http:
            h = await http_gate_bench(acc, pop, args.gates, args.warmup, f"h{r}-{name[-4:]}")
            result.setdefault("gate_http", []).append(h)
            print(f"[{name}] gate over HTTP run {r + 1}: {h}", flush=True)
            h = await http_gate_bench(
                acc, pop, args.gates, args.warmup, f"c{r}-{name[-4:]}", via="hub"
            )
            result.setdefault("gate_hub_client", []).append(h)
            print(f"[{name}] gate through the hub's client run {r + 1}: {h}", flush=True)
    result["report_ms"] = report_bench(store, args.repeat)
    print(f"[{name}] report (ms per run): {result['report_ms']}", flush=True)
    if args.explain:
        explain(engine)
    return result


def parse_args() -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--backends", default="sqlite,postgresql")
    ap.add_argument("--users", type=int, default=10_000)
    ap.add_argument("--groups", type=int, default=100)
    ap.add_argument("--projects", type=int, default=200)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--running", type=int, default=50)
    ap.add_argument("--gates", type=int, default=1000)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=2, help="runs of each measurement")
    ap.add_argument("--http", action="store_true", help="also time the gate over HTTP")
    ap.add_argument("--explain", action="store_true", help="print the queries' plans")
    ap.add_argument("--pg-fast", action="store_true", help="PostgreSQL with fsync=off")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument(
        "--before",
        metavar="REVISION",
        help="load and measure at this alembic revision, then upgrade to head and measure again",
    )
    return ap.parse_args()


async def main(args: argparse.Namespace) -> list[dict]:

    print(
        f"machine: {os.cpu_count()} CPUs, {pyplatform.platform()}, Python "
        f"{pyplatform.python_version()}, load average {os.getloadavg()}",
        flush=True,
    )
    pop = Population(args.users, args.groups, args.projects)
    cfg = config(args.groups, args.projects)
    results = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="mlf-bench-") as d:
                url = f"sqlite:///{d}/platform.sqlite"
                results.append(await run_backend("sqlite", url, args, pop, cfg))
        elif backend == "postgresql":
            durable = {"fsync": "on", "synchronous_commit": "on", "full_page_writes": "on"}
            settings = {"max_wal_size": "4GB"} | ({} if args.pg_fast else durable)
            with PostgresCluster(settings=settings) as pg:
                url = pg.create_database("bench")
                results.append(await run_backend("postgresql", url, args, pop, cfg))
        else:
            raise SystemExit(f"unknown backend {backend!r}")
    return results


if __name__ == "__main__":
    args = parse_args()
    results = asyncio.run(main(args))
    print(json.dumps(results, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1))
