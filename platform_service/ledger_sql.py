"""The ledger's SQL, built once at import: the tables, the statements the budget gate runs on
every spawn (building a select, coercing each clause, costs more than SQLAlchemy's
compiled-statement cache saves) and the expressions that price a session inside a window,
which the store and the reports share. No I/O here: `store.Store` runs them."""

from __future__ import annotations

import json
from typing import Any

from sqlalchemy import (
    ARRAY,
    Boolean,
    Float,
    FunctionElement,
    String,
    TypeDecorator,
    and_,
    bindparam,
    func,
    literal_column,
    or_,
    select,
    text,
    union_all,
)
from sqlalchemy.ext.compiler import compiles

from .db import LedgerOpen, LedgerSession, SessionGroup, SpendDaily

L = LedgerSession.__table__
G = SessionGroup.__table__
D = SpendDaily.__table__
# "this session runs": its id is one of the few in ``ledger_open``. A subquery, not a join:
# SQLite then reads the sessions by those ids (with a join it chose to scan a whole index of
# the ledger and probe ``ledger_open`` for each row).
RUNNING = L.c.id.in_(select(LedgerOpen.__table__.c.session_id))
# SQLite: sessions, then their groups, each statement taking its rows as one JSON array.
# One step of the driver for all rows: executemany steps once a row, and gives Python's
# interpreter lock up and takes it back at each, so a storm's gate batch, in a worker
# thread, waited for the event loop's thread at every row (see Store._insert_many).
INSERT_SESSIONS_SQLITE = text(
    """INSERT INTO ledger_sessions
  (key, "user", server_name, project, profile, resources, price_per_hour, started, last_seen)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'),
  json_extract(value, '$[3]'), json_extract(value, '$[4]'), json_extract(value, '$[5]'),
  json_extract(value, '$[6]'), json_extract(value, '$[7]'), json_extract(value, '$[8]')
FROM json_each(:rows)"""
)
# each group row finds its session by key (unique, indexed): no ids to fetch back
INSERT_GROUPS_SQLITE = text(
    """INSERT INTO ledger_session_groups (session_id, "group")
SELECT l.id, json_extract(g.value, '$[1]')
FROM json_each(:groups) AS g CROSS JOIN ledger_sessions AS l
WHERE l.key = json_extract(g.value, '$[0]')"""
)
# PostgreSQL: sessions and their groups in one statement, the rows passed as arrays
INSERT_WITH_GROUPS_PG = text(
    """WITH s AS (
  INSERT INTO ledger_sessions
    (key, "user", server_name, project, profile, resources, price_per_hour, started, last_seen)
  SELECT * FROM unnest(
    CAST(:key AS varchar[]), CAST(:user AS varchar[]), CAST(:server_name AS varchar[]),
    CAST(:project AS varchar[]), CAST(:profile AS varchar[]), CAST(:resources AS json[]),
    CAST(:price_per_hour AS float8[]), CAST(:started AS float8[]), CAST(:last_seen AS float8[]))
  RETURNING id, key)
INSERT INTO ledger_session_groups (session_id, "group")
SELECT s.id, g.name
FROM s JOIN unnest(CAST(:gkey AS varchar[]), CAST(:gname AS varchar[])) AS g(key, name)
  ON g.key = s.key"""
)


class NameList(TypeDecorator):
    """A list of strings bound as one parameter: a JSON array on SQLite (read back with
    ``json_each``), a ``varchar[]`` on PostgreSQL. One statement text whatever the list's
    length: an expanding ``IN`` is re-rendered into the statement at every execution, and
    each length is another statement the drivers prepare and keep per connection."""

    impl = String
    cache_ok = True

    def load_dialect_impl(self, dialect: Any) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(String()))
        return dialect.type_descriptor(String())

    def process_bind_param(self, value: Any, dialect: Any) -> Any:
        values = list(value or ())
        return values if dialect.name == "postgresql" else json.dumps(values)


class one_of(FunctionElement):
    """``expr`` is one of the strings in the list parameter called ``name``:
    ``one_of(L.c.key, "keys")``, executed with ``{"keys": [...]}`` (any length, even 0)."""

    type = Boolean()
    inherit_cache = True
    _is_implicitly_boolean = True  # a comparison: no "= 1" after it where booleans are ints

    def __init__(self, expr: Any, name: str) -> None:
        super().__init__(expr, bindparam(name, type_=NameList()))


@compiles(one_of)
def _one_of(element: one_of, compiler: Any, **kw: Any) -> str:
    expr, names = (compiler.process(c, **kw) for c in element.clauses)
    if compiler.dialect.name == "postgresql":
        return f"{expr} = ANY({names})"
    # both pieces are compiled SQL (a column expression and a bound parameter), no text
    return f"{expr} IN (SELECT value FROM json_each({names}))"  # noqa: S608


# the gate's statements
SERIAL_PG = text(
    "SELECT set_config('synchronous_commit', :durable, true), pg_advisory_xact_lock(:key)"
)
KNOWN_KEYS = select(L.c.key).where(one_of(L.c.key, "keys"))
OPEN_ROWS = (
    select(L.c.id, L.c.user, L.c.project, L.c.profile, L.c.started, L.c.price_per_hour, G.c.group)
    .select_from(L.outerjoin(G, G.c.session_id == L.c.id))
    .where(RUNNING)
)


class greatest(FunctionElement):
    """The largest of its arguments: ``greatest()`` on PostgreSQL, ``max()`` on SQLite
    (give it two or more: SQLite's ``max`` of one argument is the aggregate)."""

    type = Float()
    inherit_cache = True


class least(FunctionElement):
    """The smallest of its arguments: ``least()`` on PostgreSQL, ``min()`` on SQLite (two
    or more, as ``greatest``)."""

    type = Float()
    inherit_cache = True


@compiles(greatest)
@compiles(least)
def _extreme(element: FunctionElement, compiler: Any, **kw: Any) -> str:
    name = type(element).__name__
    if compiler.dialect.name == "sqlite":
        name = {"greatest": "max", "least": "min"}[name]
    return f"{name}({compiler.process(element.clauses, **kw)})"


def overlap_cost(start: Any, end: Any, now: float):
    """SQL: cost of each session inside [start, end) (start/end may be columns)."""
    return L.c.price_per_hour * hours(start, end, now)


def overlaps(start: Any, end: Any, now: float):
    return and_(L.c.started < end, func.coalesce(L.c.ended, now) > start)


HOUR_S = literal_column("3600.0", Float)
ZERO = literal_column("0.0", Float)


def hours(start: Any, end: Any, now: Any):
    """SQL: hours of each session inside [start, end), a running one until ``now``. Written
    with greatest/least, each term once: the gate's query in the CASE form was 7 KB, over
    psycopg's 4 KB limit for caching a statement's conversion, which then re-parsed it on
    every gate (0.3-0.5 ms)."""
    stop = least(func.coalesce(L.c.ended, now), end)
    # a session "started" after now (clocks apart) has run for no time yet, not less
    return greatest(stop - greatest(L.c.started, start), ZERO) / HOUR_S


_SPEND_KINDS: dict[tuple[tuple[str, bool], ...], Any] = {}
_KEYS = {"user": L.c.user, "group": G.c.group, "project": L.c.project}


def _running_spend(kind: str, named: bool, i: int) -> Any:
    """Per scope name of ``kind``: what its running sessions cost in the window and what
    they commit, as ``budgets.cost_in_window`` and ``budgets.commitment`` price one
    (``from`` = max(now, start); a test holds the two equal)."""
    key = _KEYS[kind]
    end = bindparam("end", type_=Float)
    now = bindparam("now", type_=Float)
    spent = hours(bindparam("start", type_=Float), end, now)
    # what is left of the first ``minrun`` seconds, from ``from`` to the window's end
    first_run = greatest(now, L.c.started + bindparam("minrun", type_=Float))
    extra = greatest(least(first_run, end) - bindparam("from", type_=Float), ZERO) / HOUR_S
    where = [RUNNING, L.c.started < end, key.is_not(None)]
    if named:
        # ``|| ''`` keeps the name's indexes out of the plan, in SQLite and PostgreSQL
        # alike: the running sessions (few, ``ledger_open``) are read and their groups
        # looked up by key, rather than every session the user, project or group ever had
        # (SQLite chose those indexes: 60 ms a gate on a 1M-session ledger)
        unindexed = key.op("||")(literal_column("''"))
        where.append(one_of(unindexed, f"names{i}"))
    source = L.join(G, G.c.session_id == L.c.id) if kind == "group" else L
    return (
        select(
            literal_column(f"'{kind}'").label("kind"),
            key.label("name"),
            func.sum(L.c.price_per_hour * spent),
            func.sum(L.c.price_per_hour * (spent + extra)),
        )
        .select_from(source)
        .where(*where)
        .group_by(key)
    )


def spend_kinds_query(shape: tuple[tuple[str, bool], ...]) -> Any:
    """``Store.spend_kinds``'s query for kinds with (True) or without a list of names, built
    once per shape (a handful: the gate's user, groups and project): (kind, name, spent,
    committed) from the daily totals of ended sessions and, priced in the database, the
    running ones, in one round trip whatever the number of servers running."""
    q = _SPEND_KINDS.get(shape)
    if q is None:
        clauses = []
        for i, (_, named) in enumerate(shape):
            clause = D.c.kind == bindparam(f"kind{i}")
            if named:
                clause = and_(clause, one_of(D.c.name, f"names{i}"))
            clauses.append(clause)
        total = func.sum(D.c.cost)
        ended = (
            select(D.c.kind, D.c.name, total, total)
            .where(D.c.day >= bindparam("start"), D.c.day < bindparam("end"), or_(*clauses))
            .group_by(D.c.kind, D.c.name)
        )
        running = [_running_spend(kind, named, i) for i, (kind, named) in enumerate(shape)]
        q = _SPEND_KINDS[shape] = union_all(ended, *running)
    return q
