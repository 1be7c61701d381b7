"""Data audit retention: the service deletes more than a year of data-credential audit while
servers keep getting credentials, on SQLite (the default database, one writer at a time).

Setup: ``--credentials`` dropped credentials spread evenly over ``--days`` days, with their
issue and drop events (three rows each); ``data.audit.keep_days`` 400, so the older part is
due. Measured: the broker's retention pass (``DataBroker.expire_audit``: one transaction per
``data_retention.BATCH`` rows) while a writer thread records an issue every 10 ms the way
``DataBroker._record_issue`` does (a credential row and its event, one transaction): each
write's latency during the pass, and the pass's duration.

Anchor, same run, same data (rebuilt): one DELETE per table, i.e. what a pass without batches
does, with the same writer. A write waits for the writer lock as long as the DELETE holding
it runs; with batches it waits at most about one batch.

    .venv/bin/python benchmarks/data_audit_retention.py [--credentials 200000 --days 800]
"""

from __future__ import annotations

import argparse
import asyncio
import platform as pyplatform
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

from mlfactory.service import data_retention
from mlfactory.service.data_broker import DataBroker
from mlfactory.service.data_db import AUDIT_TIMES, DataCredential, DataCredentialEvent
from mlfactory.service.db import make_engine, upgrade
from sqlalchemy import delete, func, insert, select

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from tests.service.helpers import platform_with  # noqa: E402

DAY = 86400.0
NOW = 1_790_000_000.0  # a fixed clock: the same rows are due in both runs
KEEP_DAYS = 400


def pct(samples: list[float], p: float) -> float:
    s = sorted(samples)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def fill(engine, n: int, days: int) -> None:
    step = days * DAY / n
    for start in range(0, n, 5000):
        creds, events = [], []
        for i in range(start, min(n, start + 5000)):
            issued = NOW - days * DAY + i * step
            dropped = issued + 1800
            creds.append(
                dict(
                    principal=f"mlf_u{i % 500}_{i:016x}",
                    store="warehouse",
                    user=f"u{i % 500}",
                    server_name="",
                    groups=["data-science"],
                    access="read",
                    roles=["dw_team_a"],
                    prefixes=[],
                    ttl=3600,
                    issued_at=issued,
                    expires_at=issued + 3600,
                    dropped_at=dropped,
                    drop_reason="server stopped",
                    queries=i % 50,
                    rows_read=i % 5000,
                )
            )
            for event, at in (("issue", issued), ("drop", dropped)):
                events.append(
                    dict(at=at, event=event, store="warehouse", user=f"u{i % 500}", server_name="")
                )
        with engine.begin() as conn:
            conn.execute(insert(DataCredential), creds)
            conn.execute(insert(DataCredentialEvent), events)


class Writer(threading.Thread):
    """Records an issue every 10 ms until stopped; keeps each write's latency."""

    def __init__(self, engine) -> None:
        super().__init__(daemon=True)
        self.engine, self.latencies, self.done = engine, [], threading.Event()

    def run(self) -> None:
        i = 0
        while not self.done.is_set():
            i += 1
            t = time.perf_counter()
            with self.engine.begin() as conn:
                conn.execute(
                    insert(DataCredential).values(
                        principal=f"mlf_live_{i:016x}{id(self):x}"[:128],
                        store="warehouse",
                        user="live",
                        server_name="",
                        groups=["data-science"],
                        access="read",
                        roles=["dw_team_a"],
                        prefixes=[],
                        ttl=3600,
                        issued_at=NOW,
                        expires_at=NOW + 3600,
                    )
                )
                conn.execute(
                    insert(DataCredentialEvent).values(
                        at=NOW, event="issue", store="warehouse", user="live", server_name=""
                    )
                )
            self.latencies.append(time.perf_counter() - t)
            self.done.wait(0.01)


def remaining(engine) -> tuple[int, int]:
    with engine.connect() as conn:
        return (
            conn.execute(select(func.count()).select_from(DataCredential)).scalar(),
            conn.execute(select(func.count()).select_from(DataCredentialEvent)).scalar(),
        )


def one_delete(engine) -> None:
    bound = data_retention.cutoff(KEEP_DAYS * int(DAY), NOW)
    for column in AUDIT_TIMES:
        with engine.begin() as conn:
            conn.execute(delete(column.class_).where(column <= bound))


def run(kind: str, n: int, days: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{tmp}/service.sqlite")
        upgrade(engine)
        fill(engine, n, days)
        before = remaining(engine)
        writer = Writer(engine)
        writer.start()
        time.sleep(0.5)  # the writer's baseline before the pass
        quiet = list(writer.latencies)
        t = time.perf_counter()
        if kind == "batched":
            platform = platform_with(data={"audit": {"keep_days": KEEP_DAYS}})
            broker = DataBroker(platform, engine, {}, clock=lambda: NOW)
            asyncio.run(broker.expire_audit())
        else:
            one_delete(engine)
        took = time.perf_counter() - t
        during = writer.latencies[len(quiet) :]
        writer.done.set()
        writer.join()
        after = remaining(engine)
        engine.dispose()
    ms = [x * 1000 for x in during] or [0.0]
    return {
        "kind": kind,
        "pass_s": took,
        "deleted": tuple(b - a + len(writer.latencies) for b, a in zip(before, after, strict=True)),
        "writes": len(during),
        "p50": statistics.median(ms),
        "p99": pct(ms, 99),
        "max": max(ms),
        "quiet_p50": statistics.median([x * 1000 for x in quiet] or [0.0]),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--credentials", type=int, default=200_000)
    ap.add_argument("--days", type=int, default=800)
    args = ap.parse_args()
    print(f"{pyplatform.python_implementation()} {pyplatform.python_version()}, "
          f"{args.credentials} credentials over {args.days} days, keep_days {KEEP_DAYS}, "
          f"batch {data_retention.BATCH}")  # fmt: skip
    for kind in ("batched", "one DELETE (anchor)"):
        r = run("batched" if kind == "batched" else "anchor", args.credentials, args.days)
        creds, events = r["deleted"]
        print(
            f"{kind:22} pass {r['pass_s']:6.2f} s, deleted {creds} credentials + {events} "
            f"events; an issue's write during it ({r['writes']} writes): p50 {r['p50']:.1f} ms,"
            f" p99 {r['p99']:.1f} ms, max {r['max']:.1f} ms (quiet p50 {r['quiet_p50']:.1f} ms)"
        )


if __name__ == "__main__":
    main()
