"""``reports.daily_by``: cost per day and group/project/user, on SQLite and PostgreSQL."""

from __future__ import annotations

import itertools
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.periods import day_starts
from mlfactory.service.reconcile import Sighting
from mlfactory.service.reports import daily_by, top_n
from mlfactory.service.store import Store, Visibility

UTC = ZoneInfo("UTC")
HOUR = 3600.0
EVERYONE = Visibility(everyone=True)
_db_names = itertools.count()


def at(day: int, hour: float = 0, tz: ZoneInfo = UTC) -> float:
    return datetime(2026, 11, day, tzinfo=tz).timestamp() + hour * HOUR


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request, tmp_path):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'reports.sqlite'}"
    else:
        cluster = request.getfixturevalue("postgresql_cluster")
        url = cluster.create_database(f"mlf_reports_{next(_db_names)}")
    engine = make_engine(url)
    upgrade(engine)
    yield Store(engine)
    engine.dispose()


def add(store: Store, key, user, start, end, price, groups=(), project="") -> None:
    s = Sighting(key=key, user=user, server_name="", started=start, price_per_hour=price,
                 project=project, groups=tuple(groups), source="gate")  # fmt: skip
    assert store.open_session(s, start)
    if end is not None:
        assert store.end_session(key, end, "stopped")


def week(store: Store) -> None:
    """Nov 1-7 UTC: ann (ds + ml) across midnight, bob (ml), cid (ds) still running."""
    add(store, "a1", "ann", at(1, 22), at(2, 2), 1.0, ("ds", "ml"), "churn")  # 2 + 2
    add(store, "b1", "bob", at(3, 10), at(3, 20), 3.0, ("ml",), "vision")  # 30 on the 3rd
    add(store, "c1", "cid", at(5, 12), None, 0.5, ("ds",), "churn")  # runs on
    add(store, "z1", "zed", at(1, 0) - 10 * HOUR, at(1, 0) - HOUR, 9.0, ("ml",), "vision")


def test_project_days_agree_with_the_store_daily_usage(store):
    week(store)
    t0, t1, now = at(1), at(8), at(6, 12)  # cid has run 24h at "now"
    days = day_starts(t0, t1, UTC)
    got = daily_by(store, "project", t0, t1, now, EVERYONE, days)
    assert got == {
        "vision": [0.0, 0.0, 30.0, 0.0, 0.0, 0.0, 0.0],
        "churn": [2.0, 2.0, 0.0, 0.0, 6.0, 6.0, 0.0],
    }
    per_day = store.usage("day", t0, t1, now, EVERYONE, days)
    totals = [sum(vals[i] for vals in got.values()) for i in range(len(days))]
    assert [r["cost"] for r in per_day] == [t for t in totals if t]


def test_groups_count_a_shared_member_in_each(store):
    week(store)
    t0, t1, now = at(1), at(4), at(4)
    days = day_starts(t0, t1, UTC)
    got = daily_by(store, "group", t0, t1, now, EVERYONE, days)
    assert got == {"ml": [2.0, 2.0, 30.0], "ds": [2.0, 2.0, 0.0]}  # largest first
    only_ds = daily_by(store, "group", t0, t1, now, EVERYONE, days, keys={"ds"})
    assert only_ds == {"ds": [2.0, 2.0, 0.0]}
    assert daily_by(store, "group", t0, t1, now, EVERYONE, days, keys=frozenset()) == {}


def test_visibility_limits_the_sessions(store):
    week(store)
    t0, t1, now = at(1), at(8), at(6, 12)
    days = day_starts(t0, t1, UTC)
    ds = Visibility(groups=frozenset({"ds"}))
    assert set(daily_by(store, "user", t0, t1, now, ds, days)) == {"ann", "cid"}
    bob = Visibility(users=frozenset({"bob"}))
    assert daily_by(store, "project", t0, t1, now, bob, days) == {
        "vision": [0.0, 0.0, 30.0, 0.0, 0.0, 0.0, 0.0]
    }
    assert daily_by(store, "user", t0, t1, now, Visibility(), days) == {}


def test_local_days_follow_the_time_zone(store):
    berlin = ZoneInfo("Europe/Berlin")  # UTC+1 in November
    add(store, "n1", "ann", at(5, 22.5), at(5, 23.5), 2.0, project="p")  # local 23:30-00:30
    t0, t1 = at(5, tz=berlin), at(7, tz=berlin)
    days = day_starts(t0, t1, berlin)
    assert daily_by(store, "project", t0, t1, at(9), EVERYONE, days) == {"p": [1.0, 1.0]}


def test_unknown_dimension_and_no_days(store):
    with pytest.raises(ValueError, match="dimension"):
        daily_by(store, "profile", at(1), at(2), at(2), EVERYONE, [at(1)])
    assert daily_by(store, "user", at(1), at(2), at(2), EVERYONE, []) == {}


def test_top_n_sums_the_rest():
    series = {"a": [5.0, 5.0], "b": [3.0, 0.0], "c": [1.0, 1.0], "d": [0.0, 0.5]}
    assert top_n(series, 4) == series
    assert top_n(series, 2) == {"a": [5.0, 5.0], "(other)": [4.0, 1.5]}
