"""The dashboard's list of running servers (``GET /api/servers``) over a class's worth of
them: time and the memory it takes at its peak (issue 20: the service's peak RSS during a
spawn storm came with this list, which an admin's dashboard asks while the class starts).

A SQLite ledger with ``--servers`` running sessions opened by the budget gate; then, each
``--repeat`` times and alternating, the list built and encoded two ways:

* **anchor**: every column of each running session read, shaped, and encoded with
  ``json.dumps`` (what the service did before);
* **shipped**: ``Accountant.running`` (only the columns shown, shaped in the worker thread)
  and ``base.dumps`` (orjson, one buffer).

Time untraced; peak is tracemalloc's in a second, traced build, from the read to the
encoded body (Python allocations only).

    .venv/bin/python benchmarks/servers_list.py
    .venv/bin/python benchmarks/servers_list.py --servers 5000 --repeat 5
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import tempfile
import time
import tracemalloc
import uuid

import yaml
from mlfactory.hub.platform_config import PACKAGED_CONFIG, parse_platform_config
from mlfactory.service.accounting import Accountant, GateRequest, _server_json
from mlfactory.service.alerts import Notifier
from mlfactory.service.base import dumps
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.ledger_sql import RUNNING, L
from mlfactory.service.store import Store, Visibility
from sqlalchemy import select


def anchor(acc: Accountant, v: Visibility) -> bytes:
    now = acc.clock()
    with acc.store.engine.connect() as conn:
        rows = conn.execute(select(L).where(RUNNING, v.clause()).order_by(L.c.started)).mappings()
        listed = [dict(r) for r in rows]
    servers = [{**_server_json(r, now), "orphaned": False} for r in listed]
    return json.dumps({"currency": acc.currency, "servers": servers}).encode()


async def shipped(acc: Accountant, v: Visibility) -> bytes:
    return dumps({"currency": acc.currency, "servers": await acc.running(v)})


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--servers", type=int, default=1000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.2f}; {args.servers} running servers")  # fmt: skip
    engine = make_engine(f"sqlite:///{tempfile.mkdtemp(prefix='mlf-servers-')}/platform.db")
    upgrade(engine)
    cfg = parse_platform_config(yaml.safe_load(PACKAGED_CONFIG.read_text()), "benchmark")
    now = time.time()  # one instant: both lists price the same hours
    acc = Accountant(Store(engine), cfg, notifier=Notifier(cfg.alerts), clock=lambda: now)
    resources = {"cpu": 2, "mem_gib": 4, "gpu": 0, "disk_gib": 10}
    for first in range(0, args.servers, 100):
        reqs = [
            GateRequest(uuid.uuid4().hex, f"u{i:05d}", "", "", "cpu-small", 0.05, (), resources)
            for i in range(first, min(first + 100, args.servers))
        ]
        acc._gate_many(reqs, now - 60)
    v = Visibility(everyone=True)
    assert json.loads(anchor(acc, v)) == json.loads(await shipped(acc, v))  # the same list
    out: dict[str, dict[str, list[float]]] = {}
    for turn in range(args.repeat):
        for name in ("anchor", "shipped")[:: 1 if turn % 2 == 0 else -1]:
            t = time.perf_counter()
            body = anchor(acc, v) if name == "anchor" else await shipped(acc, v)
            took = time.perf_counter() - t
            tracemalloc.start()  # a second build, traced: tracing slows it down
            _ = anchor(acc, v) if name == "anchor" else await shipped(acc, v)
            peak = tracemalloc.get_traced_memory()[1]
            tracemalloc.stop()
            got = out.setdefault(name, {"ms": [], "peak_kib": [], "body_kib": []})
            got["ms"].append(1000 * took)
            got["peak_kib"].append(peak / 1024)
            got["body_kib"].append(len(body) / 1024)
    for name, got in out.items():
        print(f"{name:8} " + "   ".join(
            f"{k} {statistics.median(x):7.1f} (min {min(x):.1f}, max {max(x):.1f})"
            for k, x in got.items()
        ))  # fmt: skip
    print(json.dumps({
        "anchor / shipped, medians": {
            k: round(statistics.median(out["anchor"][k]) / statistics.median(out["shipped"][k]), 2)
            for k in ("ms", "peak_kib")
        }
    }))  # fmt: skip
    engine.dispose()


if __name__ == "__main__":
    asyncio.run(main())
