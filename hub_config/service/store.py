"""Database access for the ledger, budgets, alerts and stops (synchronous; the service calls
these in a worker thread so the event loop never waits on the database).

Spend is summed in SQL: a session's cost in a window is its price times the overlap of
``[started, ended or now)`` with the window, so a month's report over a million rows is
one aggregate query per dimension rather than rows shipped to Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    Float,
    and_,
    case,
    delete,
    func,
    literal,
    or_,
    select,
    union_all,
    update,
)
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError

from .budgets import Charge, Rule, Scope, commitment, cost_in_window
from .db import AlertRow, BudgetRow, LedgerSession, SessionGroup, StopRow
from .reconcile import OpenSession, Plan, Sighting

L = LedgerSession.__table__
G = SessionGroup.__table__
DIMENSIONS = ("user", "group", "project", "profile", "day", "server")


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


def _overlap_cost(start: Any, end: Any, now: float):
    """SQL: cost of each session inside [start, end) (start/end may be columns)."""
    stop = func.coalesce(L.c.ended, now)
    stop = case((stop > end, end), else_=stop)
    begin = case((L.c.started < start, start), else_=L.c.started)
    return L.c.price_per_hour * (stop - begin) / 3600.0


def _overlaps(start: Any, end: Any, now: float):
    return and_(L.c.started < end, func.coalesce(L.c.ended, now) > start)


class Store:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    # --- ledger -------------------------------------------------------------------------

    def open_session(self, s: Sighting, now: float) -> bool:
        """Insert a running session; False when the key is already in the ledger."""
        try:
            with self.engine.begin() as conn:
                self._insert(conn, s, now)
        except IntegrityError:
            return False
        return True

    def _insert(self, conn: Connection, s: Sighting, now: float) -> None:
        result = conn.execute(
            L.insert().values(
                key=s.key,
                user=s.user,
                server_name=s.server_name,
                project=s.project,
                profile=s.profile,
                resources=dict(s.resources),
                price_per_hour=s.price_per_hour,
                started=s.started,
                ended=None,
                last_seen=max(s.started, now) if s.source != "gate" else s.started,
            )
        )
        session_id = result.inserted_primary_key[0]
        if s.groups:
            conn.execute(
                G.insert(), [{"session_id": session_id, "group": g} for g in sorted(set(s.groups))]
            )

    def end_session(self, key: str, ended: float, reason: str) -> bool:
        with self.engine.begin() as conn:
            result = conn.execute(
                update(L)
                .where(L.c.key == key, L.c.ended.is_(None))
                .values(
                    ended=case((L.c.started > ended, L.c.started), else_=ended), end_reason=reason
                )
            )
        return result.rowcount > 0

    def open_sessions(self) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(L).where(L.c.ended.is_(None))).mappings().all()
        return [dict(r) for r in rows]

    def known_keys(self, keys: Iterable[str]) -> set[str]:
        keys = list(keys)
        if not keys:
            return set()
        with self.engine.connect() as conn:
            return set(conn.execute(select(L.c.key).where(L.c.key.in_(keys))).scalars())

    def apply(self, plan: Plan, now: float) -> None:
        """Write a reconcile plan in one transaction."""
        with self.engine.begin() as conn:
            for s in plan.open:
                self._insert(conn, s, now)
            if plan.seen:
                conn.execute(update(L).where(L.c.key.in_(plan.seen)).values(last_seen=now))
            for key, ended, reason in plan.close:
                conn.execute(
                    update(L)
                    .where(L.c.key == key, L.c.ended.is_(None))
                    .values(ended=ended, end_reason=reason)
                )

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
        """{scope name: (spent, committed)} in ``[start, end)`` for users, groups or projects."""
        key = {"user": L.c.user, "project": L.c.project, "group": G.c.group}[kind]
        source = L.join(G, G.c.session_id == L.c.id) if kind == "group" else L
        where = [_overlaps(start, end, now)]
        if names is not None:
            where.append(key.in_(list(names)))
        q = (
            select(key, func.sum(_overlap_cost(start, end, now)))
            .select_from(source)
            .where(*where)
            .group_by(key)
        )
        open_q = (
            select(key, L.c.started, L.c.price_per_hour)
            .select_from(source)
            .where(L.c.ended.is_(None), *where)
        )

        def run(c: Connection) -> dict[str, tuple[float, float]]:
            out = {name: (float(total or 0.0), float(total or 0.0)) for name, total in c.execute(q)}
            for name, started, price in c.execute(open_q):
                charge = Charge(started, None, price)
                extra = commitment(charge, start, end, now, minimum_run) - cost_in_window(
                    charge, start, end, now
                )
                spent, committed = out.get(name, (0.0, 0.0))
                out[name] = (spent, committed + extra)
            return out

        if conn is not None:
            return run(conn)
        with self.engine.connect() as c:
            return run(c)

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
            cost = _overlap_cost(days.c.a, days.c.b, now)
            q = (
                select(days.c.i, func.sum(cost), func.sum(_hours(days.c.a, days.c.b, now)))
                .select_from(L.join(days, _overlaps(days.c.a, days.c.b, now)))
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
            total = func.sum(_overlap_cost(start, end, now))
            q = (
                select(key, total, func.sum(_hours(start, end, now)))
                .select_from(source)
                .where(_overlaps(start, end, now), visible.clause())
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

    def running(self, visible: Visibility) -> list[dict]:
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(L).where(L.c.ended.is_(None), visible.clause()).order_by(L.c.started)
            ).mappings()
            return [dict(r) for r in rows]

    def running_for(self, scope: Scope) -> list[dict]:
        """Open sessions charged to ``scope``."""
        if scope.kind == "group":
            cond = L.c.id.in_(select(G.c.session_id).where(G.c.group == scope.name))
        else:
            cond = (L.c.user if scope.kind == "user" else L.c.project) == scope.name
        with self.engine.connect() as conn:
            return [
                dict(r) for r in conn.execute(select(L).where(L.c.ended.is_(None), cond)).mappings()
            ]

    def projects_of(self, user: str, start: float, now: float) -> list[str]:
        with self.engine.connect() as conn:
            q = select(L.c.project).where(L.c.user == user, _overlaps(start, now, now)).distinct()
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


def _hours(start: Any, end: Any, now: float):
    stop = func.coalesce(L.c.ended, now)
    stop = case((stop > end, end), else_=stop)
    begin = case((L.c.started < start, start), else_=L.c.started)
    return (stop - begin) / 3600.0
