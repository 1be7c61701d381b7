"""Database access for the ledger, budgets, alerts and stops (synchronous; the service calls
these in a worker thread so the event loop never waits on the database).

Spend is summed in SQL: a session's cost in a window is its price times the overlap of
``[started, ended or now)`` with the window, so a month's report over a million rows is
one aggregate query per dimension rather than rows shipped to Python.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Float,
    and_,
    delete,
    func,
    literal,
    or_,
    select,
    text,
    union_all,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from . import daily
from .budgets import DIMENSIONS, Charge, Rule, Scope, commitment, cost_in_window
from .db import (
    AlertRow,
    BudgetRow,
    StopRow,
)
from .ledger_sql import (
    INSERT_GROUPS_SQLITE,
    INSERT_SESSIONS_SQLITE,
    INSERT_WITH_GROUPS_PG,
    KNOWN_KEYS,
    OPEN_ROWS,
    RUNNING,
    SERIAL_PG,
    D,
    G,
    L,
    hours,
    overlap_cost,
    overlaps,
    spend_kinds_query,
)
from .reconcile import OpenSession, Plan, Sighting

DAILY_KINDS = ("user", "group", "project", "profile")


@dataclass(frozen=True)
class Visibility:
    """Whose sessions a reader may see: everyone, or these users and these groups' sessions."""

    everyone: bool = False
    users: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    def clause(self):
        if self.everyone:
            return literal(True)
        parts = []
        if self.users:
            parts.append(L.c.user.in_(sorted(self.users)))
        if self.groups:
            parts.append(
                L.c.id.in_(select(G.c.session_id).where(G.c.group.in_(sorted(self.groups))))
            )
        return or_(*parts) if parts else literal(False)


RUNNING_SHOWN = (
    L.c.key, L.c.user, L.c.server_name, L.c.project, L.c.profile, L.c.resources,
    L.c.price_per_hour, L.c.started,
)  # fmt: skip


class Store:
    def __init__(self, engine: Engine, tz: ZoneInfo | None = None) -> None:
        self.engine = engine
        self.tz = tz or ZoneInfo("UTC")  # the zone of spend_daily's days

    @contextmanager
    def connection(self, conn: Connection | None = None) -> Iterator[Connection]:
        """``conn`` when the caller has one (the gate runs in one transaction), else a new
        connection for this call."""
        if conn is not None:
            yield conn
            return
        with self.engine.connect() as c:
            yield c

    @contextmanager
    def transaction(self, durable: bool = True, serial: int | None = None) -> Iterator[Connection]:
        """One transaction; ``durable=False`` does not wait for PostgreSQL to flush the
        commit to disk (see ``open_session``).

        ``serial``: make the whole transaction one critical section across every service
        process on this database. ``Accountant.lock`` serialises one process only; a second
        service on the same database (a rolling update, a replica) has its own, and under
        PostgreSQL's READ COMMITTED two gates would both read the same spend and both admit
        the last of a budget. PostgreSQL: the transaction-level advisory lock ``serial``,
        released by the commit, taken in the same statement as the durability setting (one
        round trip). SQLite's driver opens the transaction at the first write, leaving reads
        before it outside; a write that changes nothing opens it first and takes SQLite's
        single writer lock (waiting out the busy timeout).
        """
        with self.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                if serial is not None:
                    conn.execute(SERIAL_PG, {"durable": "on" if durable else "off", "key": serial})
                elif not durable:
                    conn.execute(text("SET LOCAL synchronous_commit TO OFF"))
            elif serial is not None and conn.dialect.name == "sqlite":
                conn.exec_driver_sql("UPDATE ledger_sessions SET ended = ended WHERE 0")
            yield conn

    def checkpoint(self) -> None:
        """Fold SQLite's write-ahead log into the database (PASSIVE: never waits on writers)."""
        if self.engine.dialect.name == "sqlite":
            with self.engine.connect() as c:
                c.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")

    # --- ledger -------------------------------------------------------------------------

    def open_session(self, s: Sighting, now: float, durable: bool = True) -> bool:
        """Insert a running session; False when the key is already in the ledger.

        ``durable=False`` (the gate) does not wait for PostgreSQL to flush the commit to
        disk: a crash could lose the row, and the next reconcile would open it again from
        the hub's and the backend's views, so the spawn need not wait on an fsync.
        """
        try:
            with self.transaction(durable) as conn:
                self._insert(conn, s, now)
        except IntegrityError:
            return False
        return True

    def _insert(self, conn: Connection, s: Sighting, now: float) -> None:
        self._insert_many(conn, [s], now)

    def _insert_many(self, conn: Connection, sightings: Sequence[Sighting], now: float) -> None:
        """Insert running sessions and their groups: two statements whatever their number
        (one on PostgreSQL, where each is a round trip), the rows passed as arrays.

        A reconcile after a restart may open thousands at once (a pod listing nobody
        remembers), and the gate opens a storm's spawns a batch at a time: one statement
        over all rows costs a fraction of one per row, or of ``executemany``, which SQLite's
        driver runs a row at a time.
        """
        if not sightings:
            return
        # the gate's session is not confirmed running yet: reconcile must see it first
        rows = [
            (
                s.key,
                s.user,
                s.server_name,
                s.project,
                s.profile,
                json.dumps(dict(s.resources)),  # as the JSON column writes it
                s.price_per_hour,
                s.started,
                max(s.started, now) if s.source != "gate" else s.started,
            )
            for s in sightings
        ]
        groups = [(s.key, g) for s in sightings for g in sorted(set(s.groups))]
        if conn.dialect.name == "postgresql":  # one round trip, not two (the gate's path)
            columns = (
                "key", "user", "server_name", "project", "profile", "resources",
                "price_per_hour", "started", "last_seen",
            )  # fmt: skip
            values = zip(*rows, strict=True)
            arrays = {c: list(v) for c, v in zip(columns, values, strict=True)}
            conn.execute(
                INSERT_WITH_GROUPS_PG,
                {**arrays, "gkey": [k for k, _ in groups], "gname": [g for _, g in groups]},
            )
            return
        conn.execute(INSERT_SESSIONS_SQLITE, {"rows": json.dumps(rows)})
        if groups:
            conn.execute(INSERT_GROUPS_SQLITE, {"groups": json.dumps(groups)})

    def end_session(self, key: str, ended: float, reason: str) -> bool:
        with self.engine.begin() as conn:
            return self._close(conn, key, ended, reason)

    def _close(self, conn: Connection, key: str, ended: float, reason: str) -> bool:
        """Close an open session and add its cost to the daily totals (one transaction)."""
        row = conn.execute(
            select(
                L.c.id, L.c.user, L.c.project, L.c.profile, L.c.started, L.c.price_per_hour
            ).where(L.c.key == key, L.c.ended.is_(None))
        ).first()
        if row is None:
            return False
        ended = max(ended, row.started)
        done = conn.execute(
            update(L)
            .where(L.c.id == row.id, L.c.ended.is_(None))
            .values(ended=ended, end_reason=reason)
        )
        if done.rowcount:
            groups = conn.execute(select(G.c.group).where(G.c.session_id == row.id)).scalars()
            totals: daily.Totals = {}
            daily.bucket(totals, row, list(groups), ended, self.tz)
            daily.add(conn, totals)
        return bool(done.rowcount)

    def open_sessions(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(L).where(RUNNING)).mappings().all()
        return [dict(r) for r in rows]

    def known_keys(self, keys: Iterable[str], conn: Connection | None = None) -> set[str]:
        keys = list(keys)
        if not keys:
            return set()
        with self.connection(conn) as c:
            return set(c.execute(KNOWN_KEYS, {"keys": keys}).scalars())

    def apply(self, plan: Plan, now: float) -> None:
        """Write a reconcile plan in one transaction."""
        with self.engine.begin() as conn:
            self._insert_many(conn, plan.open, now)
            if plan.seen:
                conn.execute(update(L).where(L.c.key.in_(plan.seen)).values(last_seen=now))
            for key, ended, reason in plan.close:
                self._close(conn, key, ended, reason)

    def open_view(self) -> list[OpenSession]:
        return [OpenSession(r["key"], r["started"], r["last_seen"]) for r in self.open_sessions()]

    # --- spend --------------------------------------------------------------------------

    def spend(
        self,
        kind: str,
        start: float,
        end: float,
        now: float,
        names: Sequence[str] | None = None,
        minimum_run: int = 0,
        conn: Connection | None = None,
    ) -> dict[str, tuple[float, float]]:
        """{scope name: (spent, committed)} in ``[start, end)`` for users, groups or projects.

        When ``start`` and ``end`` are local midnights (period edges, report ranges) closed
        sessions come from the daily totals and running ones from the ledger, priced in the
        same query; any other window is summed from the ledger.
        """
        if not (self.midnight(start) and self.midnight(end)):
            return self._spend_ledger(kind, start, end, now, names, minimum_run)
        return self.spend_kinds({kind: names}, start, end, now, minimum_run, conn)[kind]

    def spend_kinds(
        self,
        wanted: Mapping[str, Sequence[str] | None],
        start: float,
        end: float,
        now: float,
        minimum_run: int = 0,
        conn: Connection | None = None,
    ) -> dict[str, dict[str, tuple[float, float]]]:
        """``spend`` for several kinds over one period in a single query (the gate's user,
        groups and project budgets); ``start``/``end`` must be local midnights."""
        shape = tuple((kind, names is not None) for kind, names in wanted.items())
        params: dict[str, Any] = {
            "start": start,
            "end": end,
            "now": now,
            "from": max(now, start),
            "minrun": float(minimum_run),
        }
        for i, (kind, names) in enumerate(wanted.items()):
            params[f"kind{i}"] = kind
            if names is not None:
                params[f"names{i}"] = names
        out: dict[str, dict[str, tuple[float, float]]] = {k: {} for k in wanted}
        with self.connection(conn) as c:
            for kind, name, spent, committed in c.execute(spend_kinds_query(shape), params):
                before = out[kind].get(name, (0.0, 0.0))
                out[kind][name] = (
                    before[0] + float(spent or 0.0),
                    before[1] + float(committed or 0.0),
                )
        return out

    def midnight(self, t: float) -> bool:
        local = datetime.fromtimestamp(t, self.tz)
        return (local.hour, local.minute, local.second, local.microsecond) == (0, 0, 0, 0)

    def _spend_ledger(
        self,
        kind: str,
        start: float,
        end: float,
        now: float,
        names: Sequence[str] | None,
        minimum_run: int,
    ) -> dict[str, tuple[float, float]]:
        key = {"user": L.c.user, "project": L.c.project, "group": G.c.group}[kind]
        source = L.join(G, G.c.session_id == L.c.id) if kind == "group" else L
        where = [overlaps(start, end, now)]
        if names is not None:
            where.append(key.in_(list(names)))
        q = (
            select(key, func.sum(overlap_cost(start, end, now)))
            .select_from(source)
            .where(*where)
            .group_by(key)
        )
        with self.engine.connect() as c:
            out = {n: (float(t or 0.0), float(t or 0.0)) for n, t in c.execute(q)}
            for name, started, price in _open_charges({kind: names}, end, self.open_rows(c))[kind]:
                charge = Charge(started, None, price)
                extra = commitment(charge, start, end, now, minimum_run)
                extra -= cost_in_window(charge, start, end, now)
                spent, committed = out.get(name, (0.0, 0.0))
                out[name] = (spent, committed + extra)
        return out

    def open_rows(self, c: Connection | None = None) -> list[Any]:
        """The running sessions with their groups (one row per session and group)."""
        with self.connection(c) as conn:
            return conn.execute(OPEN_ROWS).all()

    # --- daily totals -------------------------------------------------------------------

    def sync_daily(self) -> bool:
        """Rebuild the daily totals when they were made in another time zone (or never);
        True when it rebuilt."""
        if daily.built_in(self.engine) == self.tz.key:
            return False
        self.rebuild_daily()
        return True

    def rebuild_daily(self) -> None:
        daily.rebuild(self.engine, self.tz)

    def usage(
        self,
        by: str,
        start: float,
        end: float,
        now: float,
        visible: Visibility,
        day_starts: Sequence[float] = (),
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """Cost and hours per ``by`` (user, group, project, profile, server or day), largest
        first (days in order)."""
        if by not in DIMENSIONS:
            raise ValueError(by)
        aligned = self.midnight(start) and self.midnight(end)
        if visible.everyone and by != "server" and aligned:
            return self._usage_daily(by, start, end, now, day_starts, limit)
        if by == "day":
            bounds = list(day_starts) + [end]
            days = union_all(
                *[
                    select(
                        literal(i).label("i"),
                        literal(a, Float).label("a"),
                        literal(b, Float).label("b"),
                    )
                    for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))
                ]
            ).cte("days")
            cost = overlap_cost(days.c.a, days.c.b, now)
            q = (
                select(days.c.i, func.sum(cost), func.sum(hours(days.c.a, days.c.b, now)))
                .select_from(L.join(days, overlaps(days.c.a, days.c.b, now)))
                .where(visible.clause())
                .group_by(days.c.i)
                .order_by(days.c.i)
            )
        else:
            key = {
                "user": L.c.user,
                "project": L.c.project,
                "profile": L.c.profile,
                "group": G.c.group,
                "server": L.c.user + "/" + L.c.server_name,
            }[by]
            source = L.join(G, G.c.session_id == L.c.id) if by == "group" else L
            total = func.sum(overlap_cost(start, end, now))
            q = (
                select(key, total, func.sum(hours(start, end, now)))
                .select_from(source)
                .where(overlaps(start, end, now), visible.clause())
                .group_by(key)
                .order_by(total.desc())
            )
            if limit:
                q = q.limit(limit)
        with self.engine.connect() as conn:
            rows = conn.execute(q).all()
        return [
            {"key": k, "cost": round(c or 0.0, 4), "hours": round(h or 0.0, 4)} for k, c, h in rows
        ]

    def _usage_daily(
        self,
        by: str,
        start: float,
        end: float,
        now: float,
        days: Sequence[float],
        limit: int | None,
    ) -> list[dict[str, Any]]:
        """Everyone's usage from the daily totals plus the running sessions."""
        kind = "user" if by == "day" else by
        col = D.c.day if by == "day" else D.c.name
        acc: dict[Any, list[float]] = {}
        with self.engine.connect() as c:
            q = (
                select(col, func.sum(D.c.cost), func.sum(D.c.hours))
                .where(D.c.kind == kind, D.c.day >= start, D.c.day < end)
                .group_by(col)
            )
            for k, cost, hours in c.execute(q):
                acc[k] = [float(cost or 0.0), float(hours or 0.0)]
            for name, started, price in _open_charges({kind: None}, end, self.open_rows(c))[kind]:
                charge = Charge(started, None, price)
                if by == "day":
                    for i, a in enumerate(days):
                        b = days[i + 1] if i + 1 < len(days) else end
                        self._add_open(acc, a, charge, a, b, now)
                else:
                    self._add_open(acc, name, charge, start, end, now)
        if by == "day":
            index = {d: i for i, d in enumerate(days)}
            rows = sorted((index[k], v) for k, v in acc.items() if k in index)
        else:
            rows = sorted(acc.items(), key=lambda kv: -kv[1][0])[:limit]
        return [{"key": k, "cost": round(v[0], 4), "hours": round(v[1], 4)} for k, v in rows]

    @staticmethod
    def _add_open(acc: dict, key: Any, charge: Charge, a: float, b: float, now: float) -> None:
        cost = cost_in_window(charge, a, b, now)
        if cost or charge.price_per_hour == 0:
            hours = (
                cost / charge.price_per_hour
                if charge.price_per_hour
                else (max(0.0, min(now, b) - max(charge.started, a)) / 3600)
            )
            if hours > 0:
                t = acc.setdefault(key, [0.0, 0.0])
                t[0] += cost
                t[1] += hours

    def running(self, visible: Visibility) -> list[dict]:
        """The running sessions ``visible`` shows, oldest first: the columns a server's JSON
        shows (the dashboard lists a thousand at a time during a class's start)."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*RUNNING_SHOWN).where(RUNNING, visible.clause()).order_by(L.c.started)
            ).mappings()
            return [dict(r) for r in rows]

    def running_for(self, scope: Scope) -> list[dict]:
        """Open sessions charged to ``scope``."""
        if scope.kind == "group":
            cond = L.c.id.in_(select(G.c.session_id).where(G.c.group == scope.name))
        else:
            cond = (L.c.user if scope.kind == "user" else L.c.project) == scope.name
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(L).where(RUNNING, cond)).mappings()]

    def projects_of(self, user: str, start: float, now: float) -> list[str]:
        with self.engine.connect() as conn:
            q = select(L.c.project).where(L.c.user == user, overlaps(start, now, now)).distinct()
            return sorted(conn.execute(q).scalars())

    def groups_of_sessions(self, ids: Sequence[int]) -> dict[int, list[str]]:
        if not ids:
            return {}
        out: dict[int, list[str]] = {}
        with self.engine.connect() as conn:
            for sid, group in conn.execute(
                select(G.c.session_id, G.c.group).where(G.c.session_id.in_(ids))
            ):
                out.setdefault(sid, []).append(group)
        return out

    # --- budgets ------------------------------------------------------------------------

    def stored_rules(self) -> dict[Scope, Rule]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(BudgetRow.__table__)).mappings().all()
        return {
            Scope(r["kind"], r["name"]): Rule(
                scope=Scope(r["kind"], r["name"]),
                amount=r["amount"],
                period=r["period"],
                thresholds=tuple(r["thresholds"]),
                enforcement=r["enforcement"],
                grace=r["grace"],
                notify=tuple(r["notify"] or ()),
                source="api",
            )
            for r in rows
        }

    def put_rule(self, rule: Rule, now: float, by: str) -> None:
        t = BudgetRow.__table__
        values = {
            "amount": rule.amount,
            "period": rule.period,
            "thresholds": list(rule.thresholds),
            "enforcement": rule.enforcement,
            "grace": rule.grace,
            "notify": list(rule.notify),
            "updated_at": now,
            "updated_by": by,
        }
        with self.engine.begin() as conn:
            where = (t.c.kind == rule.scope.kind, t.c.name == rule.scope.name)
            if conn.execute(update(t).where(*where).values(**values)).rowcount == 0:
                conn.execute(
                    t.insert().values(kind=rule.scope.kind, name=rule.scope.name, **values)
                )

    def delete_rule(self, scope: Scope) -> bool:
        t = BudgetRow.__table__
        with self.engine.begin() as conn:
            result = conn.execute(delete(t).where(t.c.kind == scope.kind, t.c.name == scope.name))
        return result.rowcount > 0

    # --- alerts and stops ---------------------------------------------------------------

    def fired(self, period_starts: dict[Scope, float]) -> dict[Scope, set[float]]:
        """Thresholds already fired in each scope's current period."""
        t = AlertRow.__table__
        out: dict[Scope, set[float]] = {s: set() for s in period_starts}
        if not period_starts:
            return out
        starts = sorted(set(period_starts.values()))
        with self.engine.connect() as conn:
            for kind, name, ps, th in conn.execute(
                select(t.c.kind, t.c.name, t.c.period_start, t.c.threshold).where(
                    t.c.period_start.in_(starts)
                )
            ):
                scope = Scope(kind, name)
                if period_starts.get(scope) == ps:
                    out[scope].add(th)
        return out

    def record_alert(self, row: dict[str, Any]) -> int | None:
        """Insert an alert; None when it already fired (another process got there first)."""
        try:
            with self.engine.begin() as conn:
                return conn.execute(AlertRow.__table__.insert().values(**row)).inserted_primary_key[
                    0
                ]
        except IntegrityError:
            return None

    def set_delivery(self, alert_id: int, delivery: dict[str, str]) -> None:
        t = AlertRow.__table__
        with self.engine.begin() as conn:
            conn.execute(update(t).where(t.c.id == alert_id).values(delivery=delivery))

    def alerts(
        self, start: float, end: float, scopes: Iterable[Scope] | None = None, limit: int = 500
    ) -> list[dict]:
        t = AlertRow.__table__
        q = select(t).where(t.c.fired_at >= start, t.c.fired_at < end)
        if scopes is not None:
            pairs = [and_(t.c.kind == s.kind, t.c.name == s.name) for s in scopes]
            q = q.where(or_(*pairs) if pairs else literal(False))
        with self.engine.connect() as conn:
            rows = conn.execute(q.order_by(t.c.fired_at.desc()).limit(limit)).mappings().all()
        return [dict(r) for r in rows]

    def stop_rows(self, period_starts: dict[Scope, float]) -> dict[Scope, dict]:
        t = StopRow.__table__
        out: dict[Scope, dict] = {}
        if not period_starts:
            return out
        with self.engine.connect() as conn:
            for r in conn.execute(
                select(t).where(t.c.period_start.in_(sorted(set(period_starts.values()))))
            ).mappings():
                scope = Scope(r["kind"], r["name"])
                if period_starts.get(scope) == r["period_start"]:
                    out[scope] = dict(r)
        return out

    def record_warning(self, scope: Scope, period_start: float, now: float) -> bool:
        try:
            with self.engine.begin() as conn:
                conn.execute(
                    StopRow.__table__.insert().values(
                        kind=scope.kind, name=scope.name, period_start=period_start, warned_at=now
                    )
                )
        except IntegrityError:
            return False
        return True

    def record_stop(
        self, scope: Scope, period_start: float, now: float, servers: list[str]
    ) -> None:
        t = StopRow.__table__
        with self.engine.begin() as conn:
            conn.execute(
                update(t)
                .where(
                    t.c.kind == scope.kind, t.c.name == scope.name, t.c.period_start == period_start
                )
                .values(stopped_at=now, servers=servers)
            )


def _open_charges(
    wanted: Mapping[str, Sequence[str] | None], end: float, rows: Sequence[Any]
) -> dict[str, list[tuple[str, float, float]]]:
    """Per kind, (scope name, started, price) of each running session charged to it, from
    ``open_rows`` (one row per session and group) in one pass; ``None`` names: all."""
    names = {k: set(v) if v is not None else None for k, v in wanted.items()}
    out: dict[str, list[tuple[str, float, float]]] = {k: [] for k in wanted}
    seen: set[int] = set()
    for r in rows:
        started = r.started
        if started >= end:
            continue
        first = r.id not in seen  # one row per group: count the session once per other kind
        seen.add(r.id)
        for kind, allowed in names.items():
            if kind == "group":
                name = r.group
            elif first:
                name = getattr(r, kind)
            else:
                continue
            if name is not None and (allowed is None or name in allowed):
                out[kind].append((name, started, r.price_per_hour))
    return out
