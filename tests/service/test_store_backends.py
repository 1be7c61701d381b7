"""The store on both databases it supports: SQLite and a real PostgreSQL server.

Every test runs once per backend, on a schema built by the alembic migrations. The SQL sums
are checked against the pure ``budgets.cost_in_window``/``commitment`` on the same data,
by hand-picked cases (a user in two groups, a session across the turn of a month) and by
generated ledgers (hypothesis).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlfactory.service.budgets import Charge, Scope, commitment, cost_in_window
from mlfactory.service.db import MIGRATIONS, Base, make_engine, upgrade
from mlfactory.service.periods import day_starts, period_bounds
from mlfactory.service.reconcile import Plan, Sighting
from mlfactory.service.store import Store, Visibility
from sqlalchemy import delete, event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError

from .helpers import empty_database

TZ = ZoneInfo("Europe/Berlin")
TABLES = {"alerts", "budget_stops", "budgets", "ledger_sessions", "ledger_session_groups"}
HOUR = 3600.0


def local(*args: int) -> float:
    return datetime(*args, tzinfo=TZ).timestamp()


# --- engines ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_engine(request, tmp_path) -> Iterator[Engine]:
    """An empty database (no tables) on each backend."""
    engine = make_engine(empty_database(request, tmp_path))
    yield engine
    engine.dispose()


@pytest.fixture
def engine(bare_engine) -> Engine:
    upgrade(bare_engine)
    return bare_engine


@pytest.fixture
def db(engine) -> Store:
    return Store(engine)


def alembic_run(engine: Engine, verb: str, target: str) -> None:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        getattr(command, verb)(cfg, target)


def revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def head() -> str:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


# --- migrations ---------------------------------------------------------------------------


def test_migrations_build_the_models_schema_and_are_idempotent(bare_engine):
    upgrade(bare_engine)
    upgrade(bare_engine)  # a restart of the service: nothing to do, nothing breaks
    assert revision(bare_engine) == head()
    assert TABLES <= set(inspect(bare_engine).get_table_names())
    with bare_engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == [], "the migrations and db.py disagree; write a migration"


def test_downgrade_to_base_and_upgrade_again(bare_engine):
    upgrade(bare_engine)
    Store(bare_engine).open_session(sighting("k1", "alice", 0.0), 0.0)
    alembic_run(bare_engine, "downgrade", "base")
    assert revision(bare_engine) is None
    assert set(inspect(bare_engine).get_table_names()) & TABLES == set()
    upgrade(bare_engine)
    assert revision(bare_engine) == head()
    store = Store(bare_engine)
    assert store.open_sessions() == []
    assert store.open_session(sighting("k1", "alice", 0.0), 0.0)


def test_upgrading_lists_the_sessions_already_running(bare_engine):
    """0011 moves "running" from an index on ``ended`` to ``ledger_open``: a database
    upgraded with servers running keeps charging them, and the ended ones stay ended."""
    alembic_run(bare_engine, "upgrade", "0010")
    before = Store(bare_engine)
    before.open_session(sighting("runs", "alice", 0.0), 0.0)
    before.open_session(sighting("ended", "bob", 0.0), 0.0)
    with bare_engine.begin() as conn:
        conn.execute(text("UPDATE ledger_sessions SET ended = 60 WHERE key = 'ended'"))
    upgrade(bare_engine)
    assert [r["key"] for r in Store(bare_engine).open_sessions()] == ["runs"]
    alembic_run(bare_engine, "downgrade", "0010")  # and back: the index again, no table
    assert "ledger_open" not in inspect(bare_engine).get_table_names()
    assert "ix_ledger_open" in {
        i["name"] for i in inspect(bare_engine).get_indexes("ledger_sessions")
    }


# --- the ledger ---------------------------------------------------------------------------


def sighting(key: str, user: str, started: float, price: float = 1.0, **kw) -> Sighting:
    return Sighting(
        key=key,
        user=user,
        server_name=kw.pop("server_name", ""),
        started=started,
        price_per_hour=price,
        **kw,
    )


def test_a_batch_of_sessions_is_two_statements_and_every_value_round_trips(db):
    """The gate and the reconcile open many sessions at once: one statement for the sessions
    and one for their groups, never a statement or a driver step per row (``executemany``
    runs a row at a time on SQLite, and gave the interpreter lock up at each: a storm's
    gate waited for the event loop at every row). What is read back is what was written."""
    t = local(2026, 11, 3, 9, 0) + 0.123456789
    batch = [
        sighting(
            f"k{i}",
            f"ü{i}'\"",
            t + i / 7,
            0.1 * i,
            server_name="gpu's" if i % 2 else "",
            project='p"1',
            profile="cpu-small",
            resources={"cpu": 2.5, "gpu": {"kind": "a100", "count": i}, "tags": ["x", None]},
            groups=("ds", "ml", "ds")[: i % 4],
            source="gate" if i % 3 else "hub",
        )
        for i in range(60)
    ]
    executed: list[bool] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        executed.append(executemany)

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        with db.engine.begin() as conn:
            db._insert_many(conn, batch, t + 100)
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    sqlite = db.engine.dialect.name == "sqlite"
    assert executed == ([False, False] if sqlite else [False])
    with db.engine.connect() as conn:
        rows = conn.execute(text("SELECT * FROM ledger_sessions ORDER BY id")).mappings().all()
        groups = conn.execute(
            text(
                'SELECT s.key, g."group" FROM ledger_session_groups g '
                "JOIN ledger_sessions s ON s.id = g.session_id"
            )
        ).all()
    assert [r["key"] for r in rows] == [s.key for s in batch]  # in the order given
    for r, s in zip(rows, batch, strict=True):
        assert (r["user"], r["server_name"], r["project"], r["profile"]) == (
            s.user, s.server_name, s.project, s.profile,
        )  # fmt: skip
        assert (r["price_per_hour"], r["started"], r["ended"]) == (
            s.price_per_hour,
            s.started,
            None,
        )
        resources = (
            r["resources"] if isinstance(r["resources"], dict) else json.loads(r["resources"])
        )
        assert resources == s.resources
        # the gate's session is not confirmed running yet: last seen when it started
        assert r["last_seen"] == (s.started if s.source == "gate" else t + 100)
    assert sorted(groups) == sorted((s.key, g) for s in batch for g in set(s.groups))
    assert db.open_sessions() and len(db.running(Visibility(everyone=True))) == 60


def test_a_list_of_keys_or_names_is_one_parameter_whatever_its_length(db):
    """Keys and scope names go to the database as one list parameter: every length finds
    exactly its rows (none, one, a storm's batch, quotes and non-ASCII kept), and the
    statement's text is the same for all of them, so the drivers prepare it once."""
    t = local(2026, 11, 3, 9, 0)
    names = [f"ü{i}'\"" for i in range(300)]
    with db.engine.begin() as conn:
        db._insert_many(
            conn, [sighting(f"k{i}", names[i], t, 1.0, groups=("ds",)) for i in range(300)], t
        )
    texts: set[str] = set()

    def grab(conn, cursor, statement, parameters, context, executemany):
        texts.add(statement)

    start, end = period_bounds("monthly", t, TZ)
    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        for n in (0, 1, 2, 3, 200, 300):
            wanted = [f"k{i}" for i in range(0, 2 * n, 2)] + ["missing", "k'"]
            assert db.known_keys(wanted) == {f"k{i}" for i in range(0, 2 * n, 2) if i < 300}
            spend = db.spend_kinds({"user": names[:n], "group": []}, start, end, t + HOUR)
            assert set(spend["user"]) == set(names[:n])
            assert all(spent == pytest.approx(1.0) for spent, _ in spend["user"].values())
            assert spend["group"] == {}
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    assert len(texts) == 2  # the known keys' statement and the spend query, once each


def test_open_and_end_sessions_and_the_unique_key(db):
    t = local(2026, 11, 3, 9, 0)
    assert db.open_session(sighting("k1", "alice", t, 2.0, groups=("a", "b", "a")), t)
    assert not db.open_session(sighting("k1", "bob", t + 5, 9.0), t + 5)  # same key: refused
    assert db.known_keys(["k1", "k2"]) == {"k1"}
    (row,) = db.open_sessions()
    assert (row["user"], row["price_per_hour"], row["ended"]) == ("alice", 2.0, None)
    assert db.groups_of_sessions([row["id"]]) == {row["id"]: ["a", "b"]}
    assert db.end_session("k1", t + HOUR, "stopped")
    assert not db.end_session("k1", t + 2 * HOUR, "again")  # ends once
    assert db.open_sessions() == []
    assert db.spend("user", t - HOUR, t + 5 * HOUR, t + 5 * HOUR) == {"alice": (2.0, 2.0)}
    # an end before the start (clock skew) is clamped: zero, never negative
    assert db.open_session(sighting("k2", "carol", t), t)
    assert db.end_session("k2", t - 100, "skew")
    assert db.spend("user", t - HOUR, t + 5 * HOUR, t + 5 * HOUR)["carol"] == (0.0, 0.0)


def running_ids(db: Store) -> tuple[set[int], set[int]]:
    """The ids ``ledger_open`` lists, and those whose ``ended`` is NULL."""
    with db.engine.connect() as conn:
        listed = set(conn.execute(text("SELECT session_id FROM ledger_open")).scalars())
        open_ = conn.execute(text("SELECT id FROM ledger_sessions WHERE ended IS NULL"))
        return listed, set(open_.scalars())


def test_the_running_list_follows_every_write_to_the_ledger(db):
    """Whoever writes ``ledger_sessions`` (the gate, a reconcile, an operator's SQL), the
    triggers keep ``ledger_open`` to the sessions whose ``ended`` is NULL."""
    t = local(2026, 11, 3, 9, 0)
    db.open_session(sighting("gate", "alice", t), t)
    db.apply(Plan(open=[sighting(f"r{i}", "bob", t) for i in range(3)]), t)
    db.end_session("r0", t + HOUR, "stopped")
    db.apply(Plan(close=[("r1", t + HOUR, "gone")]), t + HOUR)
    with db.engine.begin() as conn:
        conn.execute(  # a session recorded already ended: never listed
            text(
                'INSERT INTO ledger_sessions (key, "user", server_name, project, profile,'
                " resources, price_per_hour, started, ended, last_seen)"
                " VALUES ('old', 'carol', '', '', '', '{}', 1, 0, 60, 60)"
            )
        )
        conn.execute(text("UPDATE ledger_sessions SET ended = NULL WHERE key = 'r0'"))
        conn.execute(text("UPDATE ledger_sessions SET ended = ended WHERE key = 'old'"))
        conn.execute(text("UPDATE ledger_sessions SET last_seen = 1 WHERE key = 'gate'"))
    listed, open_ = running_ids(db)
    assert listed == open_
    assert sorted(r["key"] for r in db.open_sessions()) == ["gate", "r0", "r2"]
    with db.engine.begin() as conn:  # deleting a session removes it from the list too
        conn.execute(text("DELETE FROM ledger_sessions WHERE key = 'r2'"))
    listed, open_ = running_ids(db)
    assert listed == open_ and len(listed) == 2


@pytest.mark.parametrize("durable", [True, False])
def test_a_serial_transaction_holds_the_lock_and_keeps_its_durability(db, durable):
    """The gate's transaction: one critical section across service processes, and a commit
    that waits on PostgreSQL's fsync only when durable (one statement sets up both)."""
    postgres = db.engine.dialect.name == "postgresql"
    if postgres:  # the test cluster's own setting, which the transaction must not change
        with db.engine.connect() as conn:
            default = conn.execute(text("SHOW synchronous_commit")).scalar()
    with db.transaction(durable=durable, serial=4242) as conn:
        if conn.dialect.name == "postgresql":
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == (
                "on" if durable else "off"
            )
            held = conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242")
            ).scalar()
            assert held == 1
        else:  # SQLite: the writer lock is taken before any read
            assert conn.connection.driver_connection.in_transaction
    if postgres:  # both end with the commit
        with db.engine.connect() as conn:
            assert conn.execute(text("SHOW synchronous_commit")).scalar() == default
            assert not conn.execute(
                text("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 4242")
            ).scalar()


def test_a_reconcile_plan_opens_many_sessions_at_once_each_with_its_own_groups(db):
    """``apply`` inserts a plan's new sessions in one batch (a first reconcile after a
    restart may open thousands): each keeps its own groups and fields, and a key already in
    the ledger rolls the whole plan back, as one transaction."""
    t = local(2026, 11, 3, 9, 0)
    opened = [
        sighting(
            f"r{i:03d}", f"user{i}", t - i, float(i), groups=tuple(f"g{j}" for j in range(i % 3))
        )
        for i in range(250)
    ]
    db.apply(Plan(open=opened), t)
    rows = {r["key"]: r for r in db.open_sessions()}
    assert len(rows) == 250
    groups = db.groups_of_sessions([r["id"] for r in rows.values()])
    for s in opened:
        row = rows[s.key]
        assert (row["user"], row["started"], row["price_per_hour"]) == (
            s.user,
            s.started,
            s.price_per_hour,
        )
        assert row["last_seen"] == t  # seen running now
        assert sorted(groups.get(row["id"], [])) == sorted(s.groups)
    # a plan with a key already in the ledger writes nothing of it
    with pytest.raises(IntegrityError):
        db.apply(
            Plan(open=[sighting("new1", "x", t), sighting("r007", "y", t)], seen=["r001"]), t + 60
        )
    assert db.known_keys(["new1"]) == set()
    assert (
        rows["r001"]["last_seen"] == {r["key"]: r for r in db.open_sessions()}["r001"]["last_seen"]
    )


def test_a_user_in_two_groups_counts_once_per_group_and_once_for_the_user(db):
    t = local(2026, 11, 3, 9, 0)
    db.open_session(sighting("a1", "alice", t, 2.0, groups=("ds", "ml"), project="p1"), t)
    db.open_session(sighting("b1", "bob", t, 1.0, groups=("ds",), project="p1"), t)
    db.open_session(sighting("a2", "alice", t, 4.0, groups=("ds", "ml"), project="p2"), t)
    db.end_session("a2", t + HOUR / 2, "stopped")
    now = t + HOUR
    start, end = period_bounds("monthly", now, TZ)
    assert db.spend("user", start, end, now) == {"alice": (4.0, 4.0), "bob": (1.0, 1.0)}
    assert db.spend("group", start, end, now) == {"ds": (5.0, 5.0), "ml": (4.0, 4.0)}
    assert db.spend("project", start, end, now) == {"p1": (3.0, 3.0), "p2": (2.0, 2.0)}
    assert db.spend("group", start, end, now, names=["ml"]) == {"ml": (4.0, 4.0)}
    # committed: running servers count at least their first two hours
    two_hours = db.spend("group", start, end, now, minimum_run=7200)
    assert two_hours == {"ds": (5.0, 8.0), "ml": (4.0, 6.0)}
    by_group = {r["key"]: r for r in db.usage("group", start, end, now, Visibility(True))}
    assert {k: r["cost"] for k, r in by_group.items()} == {"ds": 5.0, "ml": 4.0}
    assert {k: r["hours"] for k, r in by_group.items()} == {"ds": 2.5, "ml": 1.5}


def test_the_gates_named_budgets_are_priced_as_everyones(db):
    """The gate asks for its user, groups and project by name, in one query with the
    running sessions priced in the database: each named budget gets what the whole ledger
    gives it (a session in two groups counts in each, an ended one only for its run)."""
    t = local(2026, 11, 3, 9, 0)
    db.open_session(sighting("a1", "alice", t, 2.0, groups=("ds", "ml"), project="p1"), t)
    db.open_session(sighting("b1", "bob", t + 600, 1.0, groups=("ml",), project="p2"), t)
    db.open_session(sighting("c1", "carol", t, 0.5, groups=("ops",), project="p1"), t)
    db.open_session(sighting("e1", "erin", t, 3.0, groups=("ds",)), t)
    db.end_session("e1", t + HOUR, "stopped")
    now = t + 2 * HOUR
    start, end = period_bounds("monthly", now, TZ)
    wanted = {"user": ["alice", "erin"], "group": ["ml", "ds"], "project": ["p1"]}
    named = db.spend_kinds(wanted, start, end, now, 4 * 3600)
    everyone = db.spend_kinds(dict.fromkeys(wanted), start, end, now, 4 * 3600)
    assert named == {k: {n: everyone[k][n] for n in names} for k, names in wanted.items()}
    assert named["group"] == {"ds": (7.0, 11.0), "ml": (pytest.approx(4.0 + 11 / 6), 12.0)}
    assert named["user"]["erin"] == (3.0, 3.0)  # ended: its hour only, no commitment


def test_the_gates_query_reads_the_running_sessions_not_each_budgets_history(db):
    """The plan of the gate's query, on a ledger where the user, project and group have a
    long history and two servers run: the running part goes through the running sessions
    (``ledger_open``), never through the indexes of a user's, project's or group's every
    session (SQLite chose them once: 60 ms a gate on a 1M-session ledger, against 2)."""
    t = local(2026, 11, 3, 9, 0)
    with db.engine.begin() as conn:
        db._insert_many(
            conn,
            [sighting(f"h{i}", "alice", t - i, groups=("ds",), project="p1") for i in range(2000)],
            t,
        )
        conn.execute(text("UPDATE ledger_sessions SET ended = started + 1"))
    for key in ("r1", "r2"):
        db.open_session(sighting(key, "alice", t, groups=("ds",), project="p1"), t)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as c:
            c.execute(text("VACUUM ANALYZE"))
    statements: list[tuple[str, object]] = []

    def grab(conn, cursor, statement, parameters, context, executemany):
        statements.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        start, end = period_bounds("monthly", t, TZ)
        wanted = {"user": ["alice"], "group": ["ds"], "project": ["p1"]}
        got = db.spend_kinds(wanted, start, end, t + HOUR, 3600)
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)
    assert got["group"]["ds"] == (2.0, 2.0)  # the two running servers' first hour
    sqlite = db.engine.dialect.name == "sqlite"
    ((statement, params),) = [(q, p) for q, p in statements if "UNION ALL" in q]
    raw = db.engine.raw_connection()
    try:
        cur = raw.cursor()
        cur.execute(("EXPLAIN QUERY PLAN " if sqlite else "EXPLAIN ") + statement, params)
        plan = "\n".join(" ".join(map(str, row)) for row in cur.fetchall())
    finally:
        raw.close()
    for history in ("ix_ledger_user_spend", "ix_ledger_project_spend", "ix_ledger_group_sessions"):
        assert history not in plan, plan
    # each running part (user, group, project) is driven by the running sessions' table
    assert plan.count("ledger_open") >= 3, plan
    if not sqlite:
        # psycopg caches the conversion of statements up to this length; a longer one is
        # parsed again on every gate (the CASE form of this query was 7 KB: 0.3-0.5 ms)
        from psycopg._queries import MAX_CACHED_STATEMENT_LENGTH

        assert len(statement) <= MAX_CACHED_STATEMENT_LENGTH


def test_a_session_across_the_turn_of_the_month_is_split_exactly(db):
    started = local(2026, 10, 31, 22, 30)
    ended = local(2026, 11, 1, 1, 30)  # 3 h: 1.5 h in October, 1.5 h in November
    db.open_session(sighting("k", "alice", started, 2.0, groups=("ds",), project="p"), started)
    db.end_session("k", ended, "stopped")
    running = local(2026, 10, 31, 23, 0)  # still running at the end of the query
    db.open_session(sighting("r", "bob", running, 1.0), running)
    now = local(2026, 11, 1, 2, 0)
    october = period_bounds("monthly", started, TZ)
    november = period_bounds("monthly", ended, TZ)
    assert october[1] == november[0] == local(2026, 11, 1)
    for kind, name in (("user", "alice"), ("group", "ds"), ("project", "p")):
        assert db.spend(kind, *october, now)[name] == (3.0, 3.0)
        assert db.spend(kind, *november, now)[name] == (3.0, 3.0)
    assert db.spend("user", *october, now)["bob"] == (1.0, 1.0)
    assert db.spend("user", *november, now, minimum_run=4 * 3600)["bob"] == (2.0, 3.0)
    days = day_starts(local(2026, 10, 31), local(2026, 11, 2), TZ)
    rows = db.usage("day", local(2026, 10, 31), local(2026, 11, 2), now, Visibility(True), days)
    assert rows == [
        {"key": 0, "cost": 4.0, "hours": 2.5},  # alice 1.5 h at 2, bob 1 h at 1
        {"key": 1, "cost": 5.0, "hours": 3.5},  # alice 1.5 h at 2, bob 2 h at 1
    ]


def test_usage_by_every_dimension_and_who_may_see_it(db):
    t = local(2026, 11, 2, 8, 0)
    rows = [
        ("k1", "alice", ("ds", "ml"), "p1", "cpu-small", "", 1.0, t, t + 2 * HOUR),
        ("k2", "alice", ("ds", "ml"), "p2", "gpu-t4", "train", 6.0, t + HOUR, t + 3 * HOUR),
        ("k3", "bob", ("ds",), "p1", "cpu-small", "", 0.5, t + 24 * HOUR, None),
        ("k4", "carol", (), "", "cpu-large", "", 2.0, t + 26 * HOUR, t + 27 * HOUR),
    ]
    for key, user, groups, project, profile, server, price, started, ended in rows:
        s = sighting(
            key,
            user,
            started,
            price,
            groups=groups,
            project=project,
            profile=profile,
            server_name=server,
        )
        db.open_session(s, started)
        if ended is not None:
            db.end_session(key, ended, "stopped")
    now = t + 28 * HOUR  # bob has run 4 h
    start, end = period_bounds("monthly", now, TZ)
    everyone = Visibility(everyone=True)

    def by(dim: str, v: Visibility = everyone, **kw) -> list[tuple]:
        return [(r["key"], r["cost"], r["hours"]) for r in db.usage(dim, start, end, now, v, **kw)]

    users = by("user")  # bob and carol tie: either order
    assert users[0] == ("alice", 14.0, 4.0)
    assert sorted(users[1:]) == [("bob", 2.0, 4.0), ("carol", 2.0, 1.0)]
    assert by("group") == [("ds", 16.0, 8.0), ("ml", 14.0, 4.0)]
    assert by("project") == [("p2", 12.0, 2.0), ("p1", 4.0, 6.0), ("", 2.0, 1.0)]
    assert by("profile") == [
        ("gpu-t4", 12.0, 2.0),
        ("cpu-small", 4.0, 6.0),
        ("cpu-large", 2.0, 1.0),
    ]
    assert by("server")[0] == ("alice/train", 12.0, 2.0)
    assert {k for k, _, _ in by("server")} == {"alice/train", "alice/", "bob/", "carol/"}
    assert by("user", limit=1) == [("alice", 14.0, 4.0)]
    days = day_starts(start, end, TZ)
    by_day = by("day", day_starts=days)
    assert by_day == [(1, 14.0, 4.0), (2, 4.0, 5.0)]  # Nov 2; Nov 3 (bob 4 h, carol 1 h)
    assert days[1] == t - 8 * HOUR
    # who may see what: a user's own sessions, a group's members' sessions, or nothing
    only_bob = Visibility(users=frozenset({"bob"}))
    assert by("user", only_bob) == [("bob", 2.0, 4.0)]
    ml = Visibility(groups=frozenset({"ml"}))
    assert by("project", ml) == [("p2", 12.0, 2.0), ("p1", 2.0, 2.0)]
    assert by("user", Visibility(users=frozenset({"carol"}), groups=frozenset({"ml"}))) == [
        ("alice", 14.0, 4.0),
        ("carol", 2.0, 1.0),
    ]
    assert by("user", Visibility()) == []
    with pytest.raises(ValueError):
        db.usage("colour", start, end, now, everyone)


# --- unique keys: alerts, stops, budgets --------------------------------------------------


def alert(threshold: float, **kw) -> dict:
    return {
        "kind": "group",
        "name": "ds",
        "period_start": local(2026, 11, 1),
        "threshold": threshold,
        "spent": 100.0,
        "amount": 200.0,
        "enforcement": "block",
        "fired_at": local(2026, 11, 9),
        "message": "50% reached",
        "delivery": {},
        **kw,
    }


def test_an_alert_fires_once_per_scope_period_and_threshold(db):
    first = db.record_alert(alert(0.5))
    assert isinstance(first, int)
    assert db.record_alert(alert(0.5, fired_at=local(2026, 11, 10), spent=120.0)) is None
    assert isinstance(db.record_alert(alert(0.8)), int)  # another threshold
    assert isinstance(db.record_alert(alert(0.5, name="ml")), int)  # another scope
    assert isinstance(db.record_alert(alert(0.5, period_start=local(2026, 12, 1))), int)
    fired = db.fired({Scope("group", "ds"): local(2026, 11, 1)})
    assert fired == {Scope("group", "ds"): {0.5, 0.8}}
    db.set_delivery(first, {"email": "sent"})
    (row,) = [a for a in db.alerts(0, local(2027, 1, 1)) if a["id"] == first]
    assert row["delivery"] == {"email": "sent"} and row["spent"] == 100.0


def test_a_stop_warning_is_recorded_once_per_period(db):
    scope, period = Scope("project", "p"), local(2026, 11, 1)
    assert db.record_warning(scope, period, period + 10)
    assert not db.record_warning(scope, period, period + 20)
    db.record_stop(scope, period, period + 30, ["alice/"])
    row = db.stop_rows({scope: period})[scope]
    assert (row["warned_at"], row["stopped_at"], row["servers"]) == (
        period + 10,
        period + 30,
        ["alice/"],
    )


# --- generated ledgers against the pure rules ---------------------------------------------


@dataclass(frozen=True)
class Gen:
    user: str
    groups: tuple[str, ...]
    project: str
    profile: str
    price: float
    started: float
    ended: float | None

    @property
    def charge(self) -> Charge:
        return Charge(self.started, self.ended, self.price)


OCT_START, OCT_END = period_bounds("monthly", local(2026, 10, 15), TZ)  # has a 25-hour day
DAY = 24 * HOUR


@st.composite
def ledgers(draw) -> tuple[float, list[Gen]]:
    now = OCT_END + draw(st.floats(-20 * DAY, 3 * DAY))
    sessions = []
    for _ in range(draw(st.integers(0, 12))):
        started = now - draw(st.floats(0, 45 * DAY))
        length = draw(st.none() | st.floats(0, 8 * DAY))
        sessions.append(
            Gen(
                user=draw(st.sampled_from(["alice", "bob", "carol"])),
                groups=tuple(draw(st.sets(st.sampled_from(["ds", "ml", "ops"])))),
                project=draw(st.sampled_from(["", "p1", "p2"])),
                profile=draw(st.sampled_from(["cpu", "gpu"])),
                price=draw(st.sampled_from([0.0, 0.25, 1.0, 3.5])),
                started=started,
                ended=None if length is None else min(started + length, now),
            )
        )
    return now, sessions


def expected_spend(sessions, kind, start, end, now, minimum_run):
    out: dict[str, list[float]] = {}
    for s in sessions:
        if not (s.started < end and (s.ended if s.ended is not None else now) > start):
            continue
        names = {"user": [s.user], "group": sorted(set(s.groups)), "project": [s.project]}[kind]
        for name in names:
            acc = out.setdefault(name, [0.0, 0.0])
            acc[0] += cost_in_window(s.charge, start, end, now)
            acc[1] += commitment(s.charge, start, end, now, minimum_run)
    return out


def expected_usage(sessions, key, bounds, now):
    out: dict = {}
    for s in sessions:
        stop = s.ended if s.ended is not None else now
        for i, (a, b) in enumerate(zip(bounds, bounds[1:], strict=False)):
            if not (s.started < b and stop > a):
                continue
            seconds = min(stop, b) - max(s.started, a)
            for k in key(s, i):
                acc = out.setdefault(k, [0.0, 0.0])
                acc[0] += s.price * seconds / 3600
                acc[1] += seconds / 3600
    return out


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(ledger=ledgers(), minimum_run=st.sampled_from([0, 3600]))
def test_sql_sums_match_the_pure_rules(db, ledger, minimum_run):
    now, sessions = ledger
    with db.engine.begin() as conn:  # each example starts from an empty ledger
        conn.execute(delete(Base.metadata.tables["ledger_session_groups"]))
        conn.execute(delete(Base.metadata.tables["ledger_sessions"]))
    for i, s in enumerate(sessions):
        key = f"k{i}"
        assert db.open_session(
            sighting(
                key,
                s.user,
                s.started,
                s.price,
                groups=s.groups,
                project=s.project,
                profile=s.profile,
            ),
            s.started,
        )
        if s.ended is not None:
            assert db.end_session(key, s.ended, "stopped")
    start, end = OCT_START, OCT_END
    for kind in ("user", "group", "project"):
        got = db.spend(kind, start, end, now, minimum_run=minimum_run)
        want = expected_spend(sessions, kind, start, end, now, minimum_run)
        assert set(got) == set(want), kind
        for name, (spent, committed) in want.items():
            assert got[name] == (pytest.approx(spent, abs=1e-9), pytest.approx(committed, abs=1e-9))
    keys = {
        "user": lambda s, i: [s.user],
        "group": lambda s, i: sorted(set(s.groups)),
        "project": lambda s, i: [s.project],
        "profile": lambda s, i: [s.profile],
        "day": lambda s, i: [i],
    }
    days = day_starts(start, end, TZ)
    assert len(days) == 31
    for dim, key in keys.items():
        bounds = days + [end] if dim == "day" else [start, end]
        rows = db.usage(dim, start, end, now, Visibility(True), day_starts=days)
        want = expected_usage(sessions, key, bounds, now)
        assert {r["key"] for r in rows} == set(want), dim
        for r in rows:
            assert r["cost"] == pytest.approx(want[r["key"]][0], abs=1e-4), (dim, r)
            assert r["hours"] == pytest.approx(want[r["key"]][1], abs=1e-4), (dim, r)
        order = [r["key"] for r in rows] if dim == "day" else [-r["cost"] for r in rows]
        assert order == sorted(order), dim
