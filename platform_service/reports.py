"""Reports the dashboard draws that the store does not answer yet: cost per day and per
group, project or user, summed in SQL (SQLAlchemy Core; SQLite and PostgreSQL alike).

Built from the store's own overlap expressions, so a day's cost here is exactly what
``Store.usage(by="day")`` charges for that day.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

from sqlalchemy import Float, func, literal, select, union_all

from .ledger_sql import G, L, overlap_cost, overlaps
from .store import Store, Visibility

DAILY_DIMENSIONS = ("group", "project", "user")


def daily_by(
    store: Store,
    dimension: str,
    t0: float,
    t1: float,
    now: float,
    visibility: Visibility,
    day_starts: Sequence[float],
    keys: Collection[str] | None = None,
) -> dict[str, list[float]]:
    """{key: [cost on each day]} for ``dimension`` in ``[t0, t1)``, largest total first.

    ``day_starts`` are the local midnights (``periods.day_starts``); the last day ends at
    ``t1``. Only sessions ``visibility`` admits count; ``keys`` further limits which keys
    are reported (a team lead's chart of teams shows their teams, not every group their
    members' sessions are tagged with). A session of a user in two groups counts in both
    groups' series, as it does in each group's budget.
    """
    if dimension not in DAILY_DIMENSIONS:
        raise ValueError(f"dimension: use one of {', '.join(DAILY_DIMENSIONS)}")
    starts = [a for a in day_starts if a < t1]
    if not starts or (keys is not None and not keys):
        return {}
    bounds = [*starts, t1]
    days = union_all(
        *[
            select(
                literal(i).label("i"),
                literal(max(a, t0), Float).label("a"),
                literal(b, Float).label("b"),
            )
            for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False))
        ]
    ).cte("days")
    key = {"group": G.c.group, "project": L.c.project, "user": L.c.user}[dimension]
    source = L.join(days, overlaps(days.c.a, days.c.b, now))
    if dimension == "group":
        source = source.join(G, G.c.session_id == L.c.id)
    where = [visibility.clause(), overlaps(t0, t1, now)]
    if keys is not None:
        where.append(key.in_(sorted(keys)))
    q = (
        select(key, days.c.i, func.sum(overlap_cost(days.c.a, days.c.b, now)))
        .select_from(source)
        .where(*where)
        .group_by(key, days.c.i)
    )
    out: dict[str, list[float]] = {}
    with store.engine.connect() as conn:
        for k, i, cost in conn.execute(q):
            out.setdefault(k, [0.0] * len(starts))[int(i)] = round(float(cost or 0.0), 4)
    return dict(sorted(out.items(), key=lambda kv: (-sum(kv[1]), kv[0])))


def top_n(series: dict[str, list[float]], n: int, other: str = "(other)") -> dict[str, list[float]]:
    """The ``n - 1`` largest series and the rest summed as ``other`` (a chart stays legible).

    Only meaningful where series partition the spend (projects, users), not for groups.
    """
    if len(series) <= n:
        return dict(series)
    items = list(series.items())
    head, tail = items[: n - 1], items[n - 1 :]
    rest = [round(sum(vals), 4) for vals in zip(*(v for _, v in tail), strict=True)]
    return {**dict(head), other: rest}
