"""A batch of new sessions written to the SQLite ledger, alone and beside a busy thread
(issue 20: the budget gate's p99 during a spawn storm).

The gate decides a batch of spawns in a worker thread while the service's event loop goes on
in the main thread; both need Python's interpreter lock. Each round opens ``--batch``
sessions (one group each) in one transaction, as ``Accountant._gate_many`` does, two ways,
alternating:

* **executemany** (the anchor): SQLAlchemy Core's ``insert()`` with a list of parameter
  sets, then the groups the same way: what the store did before, and what SQLAlchemy gives.
* **store**: ``Store._insert_many`` as shipped.

Then the same with a second thread running Python non-stop (the loop busy with a request),
which holds the lock whenever the writer gives it up.

    .venv/bin/python benchmarks/ledger_insert.py
    .venv/bin/python benchmarks/ledger_insert.py --batch 200 --rounds 50
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import tempfile
import threading
import time
from collections.abc import Callable, Sequence

from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.ledger_sql import G, L
from mlfactory.service.reconcile import Sighting
from mlfactory.service.store import Store
from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection

GROUPS_BY_KEY = G.insert().from_select(
    ["session_id", "group"],
    select(L.c.id, bindparam("g", type_=G.c.group.type)).where(L.c.key == bindparam("k")),
)


def executemany(conn: Connection, sightings: Sequence[Sighting], now: float) -> None:
    conn.execute(
        L.insert(),
        [
            {
                "key": s.key,
                "user": s.user,
                "server_name": s.server_name,
                "project": s.project,
                "profile": s.profile,
                "resources": dict(s.resources),
                "price_per_hour": s.price_per_hour,
                "started": s.started,
                "ended": None,
                "last_seen": s.started,
            }
            for s in sightings
        ],
    )
    conn.execute(GROUPS_BY_KEY, [{"k": s.key, "g": g} for s in sightings for g in s.groups])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, default=125, help="sessions a transaction")
    ap.add_argument("--rounds", type=int, default=30, help="transactions per variant and turn")
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.2f}; {args.batch} sessions a transaction")  # fmt: skip
    folder = tempfile.mkdtemp(prefix="mlf-ledger-insert-")
    engine = make_engine(f"sqlite:///{folder}/platform.db")
    upgrade(engine)
    store = Store(engine)
    made = [0]

    def batch() -> list[Sighting]:
        now = time.time()
        out = []
        for _ in range(args.batch):
            made[0] += 1
            out.append(
                Sighting(
                    key=f"k{made[0]:09d}",
                    user=f"user{made[0] % 1000}",
                    server_name="",
                    started=now,
                    price_per_hour=0.12,
                    project="course",
                    profile="cpu-small",
                    resources={"cpu": 2, "mem_gib": 4},
                    groups=("class",),
                    source="gate",
                )
            )
        return out

    def timed(write: Callable[[Connection, Sequence[Sighting], float], None], n: int) -> list:
        times = []
        for _ in range(n):
            rows = batch()
            t = time.perf_counter()
            with store.transaction(durable=False, serial=1) as conn:
                write(conn, rows, time.time())
            times.append(1000 * (time.perf_counter() - t))
        return times

    busy = threading.Event()

    def spin() -> None:
        n = 0
        while busy.is_set():
            n += 1

    results: dict[str, dict[str, list[float]]] = {}
    for beside in ("alone", "beside a busy thread"):
        if beside != "alone":
            busy.set()
            threading.Thread(target=spin, daemon=True).start()
        for turn in range(2):  # A B, then B A
            for name, write in (("executemany", executemany), ("store", store._insert_many))[
                :: 1 if turn == 0 else -1
            ]:
                # a row at a time waits up to 5 ms for the lock per row beside a busy thread
                n = (
                    max(3, args.rounds // 5)
                    if beside != "alone" and name == "executemany"
                    else args.rounds
                )
                results.setdefault(beside, {}).setdefault(name, []).extend(timed(write, n))
        busy.clear()
    for beside, by in results.items():
        for name, times in by.items():
            print(f"{beside:22} {name:12} median {statistics.median(times):8.2f} ms   "
                  f"max {max(times):8.2f} ms   ({len(times)} transactions)")  # fmt: skip
    ratios = {b: statistics.median(v["executemany"]) / statistics.median(v["store"])
              for b, v in results.items()}  # fmt: skip
    print(json.dumps({"executemany / store, medians": {k: round(v, 1) for k, v in ratios.items()}}))
    engine.dispose()


if __name__ == "__main__":
    main()
