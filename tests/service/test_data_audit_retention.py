"""Retention of the data-credential audit: the pure verdict (``data_retention.py``), then the
broker's pass on SQLite and PostgreSQL - credentials dropped longer ago than
``data.audit.keep_days`` and events that old go, in batches of their own transactions, live
credentials stay, and the service log says what went - and migration 0010 on both databases.
Time is the test's clock, never slept on."""

from __future__ import annotations

import logging

import pytest
import sqlalchemy as sa
from mlfactory.hub.platform_schema import DataAudit
from mlfactory.service import data_broker, data_retention
from mlfactory.service.data_broker import DataBroker
from mlfactory.service.data_db import DataCredential, DataCredentialEvent
from mlfactory.service.data_retention import (
    DAY,
    Removed,
    credential_due,
    cutoff,
    event_due,
    keep_seconds,
    pass_due,
)
from mlfactory.service.db import make_engine, upgrade

from .helpers import T0, Clock, empty_database, platform_with
from .test_store_backends import alembic_run, head, revision

# --- the verdict ---------------------------------------------------------------------------


def test_keep_days_zero_keeps_forever():
    assert keep_seconds(400) == 400 * DAY
    assert keep_seconds(0) is None
    assert not credential_due(T0 - 10_000 * DAY, None, T0)
    assert not event_due(T0 - 10_000 * DAY, None, T0)


def test_a_credential_is_due_once_dropped_for_the_retention():
    keep = 30 * DAY
    assert cutoff(keep, T0) == T0 - keep
    assert credential_due(T0 - keep, keep, T0)  # exactly at the bound: goes
    assert not credential_due(T0 - keep + 1, keep, T0)
    assert credential_due(T0 - keep - 1, keep, T0)
    assert not credential_due(None, keep, T0)  # never dropped: a live credential stays
    assert event_due(T0 - keep, keep, T0) and not event_due(T0 - keep + 1, keep, T0)


def test_the_pass_runs_at_the_first_tick_then_hourly():
    assert pass_due(None, T0)
    assert not pass_due(T0, T0 + 3599)
    assert pass_due(T0, T0 + 3600)
    assert pass_due(T0, T0 - 60)  # the clock was set back: not stalled for the difference


def test_what_the_log_says():
    assert not Removed() and Removed(0, 1) and Removed(2, 0)
    line = Removed(3, 7).message(400, T0 - 400 * DAY)
    assert "keep_days: 400" in line and "3 credential record(s)" in line
    assert "7 event(s)" in line and "2025-10-06" in line


def test_the_retention_setting():
    assert DataAudit().keep_days == 400
    assert platform_with().data.audit.keep_days == 400
    assert platform_with(data={"audit": {"keep_days": 0}}).data.audit.keep_days == 0
    with pytest.raises(Exception, match="keep_days"):
        platform_with(data={"audit": {"keep_days": -1}})
    with pytest.raises(Exception, match="keep_dayz"):
        platform_with(data={"audit": {"keep_dayz": 3}})


# --- the pass, on both databases -----------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def bare_engine(request, tmp_path):
    eng = make_engine(empty_database(request, tmp_path))
    yield eng
    eng.dispose()


@pytest.fixture
def engine(bare_engine):
    upgrade(bare_engine)
    return bare_engine


def add_credential(conn, n: int, issued_at: float, dropped_at: float | None) -> None:
    conn.execute(
        sa.insert(DataCredential).values(
            principal=f"mlf_u{n}_{n:016x}",
            store="warehouse",
            user=f"u{n}",
            server_name="",
            groups=["data-science"],
            access="read",
            roles=["dw_team_a"],
            prefixes=[],
            ttl=3600,
            issued_at=issued_at,
            expires_at=issued_at + 3600,
            dropped_at=dropped_at,
            drop_reason=None if dropped_at is None else "server stopped",
            queries=n,
            rows_read=10 * n,
        )
    )
    for event, at in (("issue", issued_at), ("drop", dropped_at)):
        if at is not None:
            conn.execute(
                sa.insert(DataCredentialEvent).values(
                    at=at, event=event, store="warehouse", user=f"u{n}", server_name=""
                )
            )


def audit(engine) -> tuple[list[tuple[int, float | None]], list[float]]:
    with engine.connect() as conn:
        creds = conn.execute(
            sa.select(DataCredential.id, DataCredential.dropped_at).order_by(DataCredential.id)
        ).all()
        events = conn.execute(
            sa.select(DataCredentialEvent.at).order_by(DataCredentialEvent.id)
        ).scalars()
        return [tuple(c) for c in creds], list(events)


def broker_over(engine, clock: Clock, keep_days: int) -> DataBroker:
    # no managed store needed: the pass reads only the service's own database
    platform = platform_with(data={"audit": {"keep_days": keep_days}})
    return DataBroker(platform, engine, {}, clock=clock)


async def test_the_pass_deletes_old_audit_in_batches_and_keeps_the_rest(
    engine, monkeypatch, caplog
):
    clock = Clock()
    keep = 400 * DAY
    times = [  # (issued, dropped): around the bound, and one still live
        (T0 - 900 * DAY, T0 - 899 * DAY),
        (T0 - 500 * DAY, T0 - 500 * DAY + 60),
        (T0 - keep - 3600, T0 - keep),  # dropped exactly at the bound
        (T0 - keep - 3600, T0 - keep + 1),  # a second short of it
        (T0 - 30 * DAY, T0 - 30 * DAY + 600),
        (T0 - 700 * DAY, None),  # renewed for years on a server still running
    ] + [(T0 - 450 * DAY + i, T0 - 450 * DAY + i + 60) for i in range(7)]
    with engine.begin() as conn:
        for n, (issued, dropped) in enumerate(times):
            add_credential(conn, n, issued, dropped)
    before_creds, before_events = audit(engine)
    batches = []
    real = data_broker.delete_audit_batch

    def counted(eng, column, bound, limit):
        n = real(eng, column, bound, limit)
        batches.append((column.class_.__name__, n))
        return n

    monkeypatch.setattr(data_broker, "delete_audit_batch", counted)
    monkeypatch.setattr(data_retention, "BATCH", 3)
    monkeypatch.setattr(data_retention, "PAUSE_S", 0)  # pacing only: nothing waits on it
    broker = broker_over(engine, clock, 400)
    with caplog.at_level(logging.INFO, "mlfactory.service.data"):
        removed = await broker.expire_audit()

    creds, events = audit(engine)
    # what stays is exactly what the pure verdict keeps
    assert creds == [c for c in before_creds if not credential_due(c[1], keep, T0)]
    assert events == [at for at in before_events if not event_due(at, keep, T0)]
    assert [d for _, d in creds] == [T0 - keep + 1, T0 - 30 * DAY + 600, None]
    assert removed == Removed(len(before_creds) - 3, len(before_events) - len(events))
    assert removed.credentials == 10
    # never more than a batch per transaction; the last one short of it ends the loop
    assert all(n <= 3 for _, n in batches)
    per_table = [n for t, n in batches if t == "DataCredential"]
    assert per_table == [3, 3, 3, 1]
    assert f"deleted 10 credential record(s) dropped and {removed.events} event(s)" in caplog.text
    # the usage API no longer counts what went, and still counts what stayed
    usage = await broker.usage()
    assert sorted(r["user"] for r in usage) == ["u3", "u4", "u5"]
    # nothing more to delete: nothing logged
    caplog.clear()
    assert not await broker.expire_audit()
    assert "Data audit retention" not in caplog.text


async def test_keep_days_zero_deletes_nothing(engine):
    with engine.begin() as conn:
        add_credential(conn, 1, T0 - 5000 * DAY, T0 - 5000 * DAY + 60)
    before = audit(engine)
    assert not await broker_over(engine, Clock(), 0).expire_audit()
    assert audit(engine) == before


async def test_the_tick_runs_the_pass_hourly(engine):
    clock = Clock()
    broker = broker_over(engine, clock, 1)
    with engine.begin() as conn:
        add_credential(conn, 1, T0 - 3 * DAY, T0 - 2 * DAY)
    await broker.tick()  # the first tick: the pass runs
    assert audit(engine) == ([], [])
    with engine.begin() as conn:
        add_credential(conn, 2, T0 - 3 * DAY, T0 - 2 * DAY)
    clock.advance(600)
    await broker.tick()  # ten minutes on: not yet
    assert len(audit(engine)[0]) == 1
    clock.advance(3000)
    await broker.tick()
    assert audit(engine) == ([], [])


async def test_a_backlog_is_worked_off_over_the_next_ticks(engine, monkeypatch, caplog):
    monkeypatch.setattr(data_retention, "BATCH", 3)
    monkeypatch.setattr(data_retention, "PAUSE_S", 0)
    monkeypatch.setattr(data_retention, "MAX_BATCHES_PER_TICK", 2)
    clock = Clock()
    broker = broker_over(engine, clock, 1)
    with engine.begin() as conn:
        for n in range(8):  # 8 credentials, 16 events
            add_credential(conn, n, T0 - 3 * DAY + n, T0 - 2 * DAY + n)
    left = []
    with caplog.at_level(logging.INFO, "mlfactory.service.data"):
        for _ in range(5):  # the clock stands still: each tick goes on where the last stopped
            await broker.tick()
            creds, events = audit(engine)
            left.append((len(creds), len(events)))
    # two batches per tick: 3 + 3 credentials; 2 + 3 events; then events 3 + 3, ...
    assert left == [(2, 16), (0, 13), (0, 7), (0, 1), (0, 0)]
    assert caplog.text.count("more at the next tick") == 4
    with engine.begin() as conn:
        add_credential(conn, 9, T0 - 3 * DAY, T0 - 2 * DAY)
    await broker.tick()  # done with the backlog: the next pass waits for the hour
    assert len(audit(engine)[0]) == 1


async def test_a_failing_pass_does_not_fail_the_tick(engine, monkeypatch, caplog):
    def locked(*args):
        raise sa.exc.OperationalError("DELETE", {}, Exception("database is locked"))

    monkeypatch.setattr(data_broker, "delete_audit_batch", locked)
    broker = broker_over(engine, Clock(), 1)
    await broker.tick()
    assert "data audit past its retention failed" in caplog.text and "locked" in caplog.text


# --- migration 0010 ------------------------------------------------------------------------


def test_0010_adds_the_roles_and_prefixes_and_old_rows_read_as_unknown(bare_engine):
    alembic_run(bare_engine, "upgrade", "0009")
    with bare_engine.begin() as conn:  # a credential issued by the service before 0010
        conn.execute(
            sa.text(
                'INSERT INTO data_credentials (principal, store, "user", server_name, groups,'
                " access, ttl, issued_at, expires_at) VALUES ('mlf_old_0123456789abcdef',"
                " 'warehouse', 'old', '', '[\"data-science\"]', 'read', 3600, :t, :e)"
            ),
            {"t": T0, "e": T0 + 3600},
        )
    upgrade(bare_engine)
    assert revision(bare_engine) == head()
    columns = {c["name"] for c in sa.inspect(bare_engine).get_columns("data_credentials")}
    assert {"roles", "prefixes"} <= columns
    (old,) = DataBroker(platform_with(), bare_engine, {}).live()
    assert old.groups == ("data-science",) and old.roles is None and old.scope_unknown
    alembic_run(bare_engine, "downgrade", "0009")
    columns = {c["name"] for c in sa.inspect(bare_engine).get_columns("data_credentials")}
    assert "roles" not in columns and "prefixes" not in columns
    with bare_engine.connect() as conn:  # the row survives the way down
        assert conn.execute(sa.text("SELECT count(*) FROM data_credentials")).scalar() == 1
    upgrade(bare_engine)
    assert revision(bare_engine) == head()
