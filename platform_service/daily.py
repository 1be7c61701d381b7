"""Daily spend totals (``spend_daily``): what closed sessions cost per scope and local day.

The gate and the month's reports sum at most a month of these rows instead of re-reading
every session. Totals are added in the transaction that closes a session (``add``) and
rebuilt from the ledger when the platform's time zone changes (``rebuild``).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, select, text, update
from sqlalchemy.engine import Connection, Engine

from .db import LedgerSession, ServiceMeta, SessionGroup, SpendDaily
from .periods import day_starts

L = LedgerSession.__table__
G = SessionGroup.__table__
D = SpendDaily.__table__
META = ServiceMeta.__table__
Totals = dict[tuple[str, str, float], list[float]]  # (kind, name, day) → [cost, hours]


def bucket(totals: Totals, row: Any, groups: list, ended: float, tz: ZoneInfo) -> None:
    """Add a closed session (``row``: user, project, profile, started, price_per_hour) to
    ``totals``, split at local midnights, once for each scope it charges."""
    # project "" (charged to no project) is kept too: reports show it as a row
    scopes = [("user", row.user), ("project", row.project)] + [("group", g) for g in groups]
    if row.profile:
        scopes.append(("profile", row.profile))
    for day in day_starts(row.started, ended, tz):
        a = max(row.started, day)
        b = min(ended, (datetime.fromtimestamp(day, tz) + timedelta(days=1)).timestamp())
        if b <= a:
            continue
        hours = (b - a) / 3600
        for kind, name in scopes:
            t = totals.setdefault((kind, name, day), [0.0, 0.0])
            t[0] += row.price_per_hour * hours
            t[1] += hours


def add(conn: Connection, totals: Totals) -> None:
    """Add ``totals`` to spend_daily (update, else insert: one writer, the service)."""
    for (kind, name, day), (cost, hours) in totals.items():
        where = (D.c.kind == kind, D.c.name == name, D.c.day == day)
        done = conn.execute(
            update(D).where(*where).values(cost=D.c.cost + cost, hours=D.c.hours + hours)
        )
        if not done.rowcount:
            conn.execute(D.insert().values(kind=kind, name=name, day=day, cost=cost, hours=hours))


def built_in(engine: Engine) -> str | None:
    """The time zone the totals were made in (None: never built)."""
    with engine.connect() as c:
        return c.execute(select(META.c.value).where(META.c.key == "daily_tz")).scalar()


def rebuild(engine: Engine, tz: ZoneInfo, chunk: int = 20000) -> None:
    """Recompute every day's totals from the ledger's closed sessions, in ``tz``."""
    totals: Totals = {}
    cols = (L.c.id, L.c.user, L.c.project, L.c.profile, L.c.started, L.c.ended)
    with engine.connect() as c:
        groups: dict[int, list[str]] = {}
        for sid, g in c.execute(
            select(G.c.session_id, G.c.group)
            .select_from(G.join(L, L.c.id == G.c.session_id))
            .where(L.c.ended.is_not(None))
        ):
            groups.setdefault(sid, []).append(g)
        rows = c.execution_options(yield_per=chunk).execute(
            select(*cols, L.c.price_per_hour).where(L.c.ended.is_not(None))
        )
        for row in rows:
            bucket(totals, row, groups.get(row.id, []), row.ended, tz)
    with engine.begin() as c:
        c.execute(delete(D))
        items = [
            {"kind": k, "name": n, "day": d, "cost": v[0], "hours": v[1]}
            for (k, n, d), v in totals.items()
        ]
        for i in range(0, len(items), chunk):
            c.execute(D.insert(), items[i : i + chunk])
        c.execute(delete(META).where(META.c.key == "daily_tz"))
        c.execute(META.insert().values(key="daily_tz", value=tz.key))
    if engine.dialect.name == "postgresql":
        # fresh statistics, or the planner scans the whole table until autovacuum runs
        with engine.begin() as c:
            c.execute(text("ANALYZE spend_daily"))
