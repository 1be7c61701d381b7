"""A batch of budget gates decided in one transaction, on SQLite and PostgreSQL (issue 20:
the gate's p99 in the service during a spawn storm is one batch's wait plus one batch).

Each round decides ``--batch`` new spawns with ``Accountant._gate_many`` (what the worker
thread runs for a storm's waiting calls: the known keys, the budgets' standings, the
decisions, the INSERT of the admitted sessions), two ways, alternating:

* **expanding IN** (the anchor): the keys and the scope names as SQLAlchemy's expanding
  ``IN`` parameters, re-rendered into the statement at every execution, a statement text
  per list length (the store's way before);
* **one_of** (as shipped): each list bound as one parameter, a JSON array read with
  ``json_each`` on SQLite, a ``varchar[]`` on PostgreSQL; one statement text.

Every spawn is a new user of the shipped config (user budget and the default group's),
so each batch reads its users' standings by name. A turn is one storm: ``--spawns``
spawns from an empty ledger, as many running sessions at its end as in ``storm.py``.

    .venv/bin/python benchmarks/gate_batch.py
    .venv/bin/python benchmarks/gate_batch.py --batch 100 --backends sqlite
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from mlfactory.hub.platform_config import PACKAGED_CONFIG, parse_platform_config
from mlfactory.service import ledger_sql
from mlfactory.service import store as store_module
from mlfactory.service.accounting import Accountant, GateRequest
from mlfactory.service.alerts import Notifier
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.store import Store
from sqlalchemy import bindparam, select, text

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.pg import PostgresCluster  # noqa: E402  (no pytest in there)


@contextmanager
def expanding_in():
    """The anchor: ledger_sql's list parameters as SQLAlchemy's expanding ``IN``."""
    shipped = ledger_sql.one_of, store_module.KNOWN_KEYS

    def anchor(expr: Any, name: str) -> Any:
        return expr.in_(bindparam(name, expanding=True))

    ledger_sql.one_of = anchor
    store_module.KNOWN_KEYS = select(ledger_sql.L.c.key).where(anchor(ledger_sql.L.c.key, "keys"))
    ledger_sql._SPEND_KINDS.clear()  # the gate's query is built again, with the anchor's IN
    try:
        yield
    finally:
        ledger_sql.one_of, store_module.KNOWN_KEYS = shipped
        ledger_sql._SPEND_KINDS.clear()


def run_backend(url: str, args: argparse.Namespace) -> dict[str, list[float]]:
    engine = make_engine(url)
    upgrade(engine)
    cfg = parse_platform_config(yaml.safe_load(PACKAGED_CONFIG.read_text()), "benchmark")
    acc = Accountant(Store(engine), cfg, notifier=Notifier(cfg.alerts))
    made = [0]

    def batch() -> list[GateRequest]:
        out = []
        for _ in range(args.batch):
            made[0] += 1
            out.append(
                GateRequest(
                    key=uuid.uuid4().hex,
                    user=f"u{made[0]:06d}",
                    server_name="",
                    project="",
                    profile="cpu-small",
                    price_per_hour=0.05,
                )
            )
        return out

    def storm() -> list[float]:
        with engine.begin() as conn:  # an empty ledger: the storm's running sessions only
            for table in ("ledger_session_groups", "ledger_open", "ledger_sessions"):
                conn.execute(text(f"DELETE FROM {table}"))  # noqa: S608 (names above)
        times = []
        for _ in range(args.spawns // args.batch):
            reqs = batch()
            t = time.perf_counter()
            verdicts = acc._gate_many(reqs, time.time())
            times.append(1000 * (time.perf_counter() - t))
            assert all(v.allowed for v in verdicts), "every spawn of the benchmark is admitted"
        return times

    out: dict[str, list[float]] = {"expanding IN": [], "one_of": []}
    for turn in range(args.storms):  # A B, B A, ...
        for name in ("expanding IN", "one_of")[:: 1 if turn % 2 == 0 else -1]:
            if name == "expanding IN":
                with expanding_in():
                    out[name] += storm()
            else:
                out[name] += storm()
    engine.dispose()
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--batch", type=int, default=25, help="spawns a batch")
    ap.add_argument("--spawns", type=int, default=1000, help="spawns a storm")
    ap.add_argument("--storms", type=int, default=4, help="storms per variant, alternating")
    ap.add_argument("--backends", default="sqlite,postgresql")
    args = ap.parse_args()
    print(f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, load "
          f"{os.getloadavg()[0]:.2f}; {args.batch} gates a batch")  # fmt: skip
    summary = {}
    for backend in args.backends.split(","):
        cluster = None
        if backend == "postgresql":
            cluster = PostgresCluster().start()
            url = cluster.create_database("gates")
        else:
            url = f"sqlite:///{tempfile.mkdtemp(prefix='mlf-gate-batch-')}/platform.db"
        try:
            times = run_backend(url, args)
        finally:
            if cluster is not None:
                cluster.stop()
        for name, t in times.items():
            print(f"{backend:10} {name:13} median {statistics.median(t):7.2f} ms   "
                  f"p90 {sorted(t)[int(0.9 * len(t))]:7.2f} ms   ({len(t)} batches)")  # fmt: skip
        summary[backend] = round(
            statistics.median(times["expanding IN"]) / statistics.median(times["one_of"]), 2
        )
    print(json.dumps({"expanding IN / one_of, medians": summary}))


if __name__ == "__main__":
    main()
