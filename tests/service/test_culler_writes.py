"""The idle-shutdown pass writes its warnings and stops in a few batched statements; a row
written by someone else between the pass's load and its write (a keep-alive, a stop an
earlier pass recorded) falls back to row by row without losing the others, on SQLite and
PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mlfactory.service.culler import Culler
from mlfactory.service.culling import Decision
from mlfactory.service.db import CullingState, CullingStop
from sqlalchemy import select

from .helpers import T0, empty_database, platform_with, service_store

S = CullingState.__table__
X = CullingStop.__table__


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path) -> Iterator:
    for store in service_store(empty_database(request, tmp_path)):
        yield store.engine


def warn(culler: Culler, user: str) -> None:
    d = Decision("warn", "it was idle for 1h", warned_at=T0, deadline=T0 + 600, idle_for=3600)
    culler._remember(user, "", T0 - 7200, d, None, 3600)


def stop(user: str) -> dict:
    return {"user": user, "server_name": "", "started": T0 - 7200, "stopped_at": T0,
            "reason": "it was idle for 1h", "idle_seconds": 3600.0, "price_per_hour": 0.2,
            "profile": "cpu-small", "project": "", "groups": []}  # fmt: skip


def test_new_states_and_stops_are_written_even_when_one_exists_already(engine):
    culler = Culler(engine, platform_with(), clock=lambda: T0)
    culler._load()  # nothing stored yet
    for user in ("ann", "bob", "cy"):
        warn(culler, user)
    with engine.begin() as c:  # meanwhile: bob pressed "Keep running", a stop of cy's is in
        c.execute(S.insert().values(user="bob", server_name="", started=T0 - 7200,
                                    action="keep", keepalives=1))  # fmt: skip
        c.execute(X.insert().values(**stop("cy")))
    culler._flush(True, [stop("ann"), stop("cy")])
    with engine.connect() as c:
        states = {r.user: r for r in c.execute(select(S))}
        stops = sorted(r.user for r in c.execute(select(X)))
    assert set(states) == {"bob"}  # ann's and cy's servers stopped: their warnings go
    assert states["bob"].action == "warn" and states["bob"].keepalives == 0
    assert stops == ["ann", "cy"]  # ann's recorded although cy's was there already


def test_a_second_pass_updates_and_removes_in_batches(engine):
    culler = Culler(engine, platform_with(), clock=lambda: T0)
    culler._load()
    for user in ("ann", "bob"):
        warn(culler, user)
    culler._flush(True, [])
    culler._load()
    keep = Decision("keep", "it was active 1m ago")
    culler._remember("ann", "", T0 - 7200, keep, culler._states[("ann", "")], 3600)
    culler._flush(True, [])  # bob's server is no longer listed
    with engine.connect() as c:
        rows = {r.user: r for r in c.execute(select(S))}
    assert set(rows) == {"ann"}
    assert rows["ann"].action == "keep" and rows["ann"].warned_at is None
