"""The daily totals the gate and the month's reports read agree with summing the ledger,
whether kept up as sessions close or rebuilt, across months and a daylight-saving change."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.periods import day_starts, period_bounds
from mlfactory.service.reconcile import Sighting
from mlfactory.service.store import Store, Visibility

BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 3, 20, tzinfo=BERLIN).timestamp()  # DST starts on 29 March
NOW = datetime(2026, 4, 12, 15, tzinfo=BERLIN).timestamp()
EVERYONE = Visibility(everyone=True)

session = st.tuples(
    st.sampled_from(["ann", "bob", "cy"]),
    st.lists(st.sampled_from(["ds", "ml"]), max_size=2, unique=True),
    st.sampled_from(["", "churn", "vision"]),
    st.floats(0, 20 * 86400),  # start offset from T0
    st.floats(60, 5 * 86400),  # duration
    st.sampled_from([0.0, 0.05, 1.35]),
    st.booleans(),  # still running
)


def fill(store: Store, sessions) -> None:
    for i, (user, groups, project, offset, length, price, running) in enumerate(sessions):
        start = T0 + offset
        s = Sighting(f"key-{i:08d}", user, "", start, price, project=project, profile="cpu",
                     groups=tuple(groups), source="hub")  # fmt: skip
        store.open_session(s, start)
        if not running and start + length < NOW:
            store.end_session(s.key, start + length, "stopped")


def _close(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        assert abs(a[k][0] - b[k][0]) < 1e-6 and abs(a[k][1] - b[k][1]) < 1e-6, (k, a[k], b[k])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(sessions=st.lists(session, max_size=25))
def test_daily_totals_match_the_ledger(tmp_path_factory, sessions):
    engine = make_engine(f"sqlite:///{tmp_path_factory.mktemp('daily') / 'p.sqlite'}")
    upgrade(engine)
    store = Store(engine, BERLIN)
    fill(store, sessions)
    for period in ("monthly", "weekly"):
        for when in (T0, NOW):
            start, end = period_bounds(period, when, BERLIN)
            for kind in ("user", "group", "project"):
                daily = store.spend(kind, start, end, NOW, minimum_run=3600)
                ledger = store._spend_ledger(kind, start, end, NOW, None, 3600)
                _close(daily, {k: v for k, v in ledger.items() if v != (0.0, 0.0) or k in daily})
    start, end = period_bounds("monthly", NOW, BERLIN)
    days = day_starts(start, end, BERLIN)
    for by in ("user", "group", "project", "profile", "day"):
        fast = store.usage(by, start, end, NOW, EVERYONE, days)
        slow = store.usage(
            by, start, end, NOW, Visibility(users=frozenset({"ann", "bob", "cy"})), days
        )
        key = "key"
        f = {r[key]: (r["cost"], r["hours"]) for r in fast if r["hours"]}
        s = {r[key]: (r["cost"], r["hours"]) for r in slow if r["hours"]}
        if by == "day":
            f = {days[i]: v for i, v in f.items()} if fast and isinstance(fast[0][key], int) else f
            s = {days[i]: v for i, v in s.items()}
        for k in set(f) | set(s):
            assert abs(f.get(k, (0, 0))[0] - s.get(k, (0, 0))[0]) < 1e-3, (by, k)
            assert abs(f.get(k, (0, 0))[1] - s.get(k, (0, 0))[1]) < 1e-3, (by, k)
    # a rebuild from the ledger gives the same totals as keeping them up
    before = store.spend("group", *period_bounds("monthly", T0, BERLIN), NOW)
    store.rebuild_daily()
    _close(store.spend("group", *period_bounds("monthly", T0, BERLIN), NOW), before)
    engine.dispose()


def test_a_new_time_zone_rebuilds_the_totals(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'p.sqlite'}")
    upgrade(engine)
    store = Store(engine, ZoneInfo("UTC"))
    assert store.sync_daily()  # never built: built now
    fill(store, [("ann", [], "", 3600.0, 7200.0, 1.0, False)])
    assert not store.sync_daily()
    berlin = Store(engine, BERLIN)
    assert berlin.sync_daily()
    start, end = period_bounds("monthly", NOW, BERLIN)
    march = period_bounds("monthly", T0, BERLIN)
    assert berlin.spend("user", *march, NOW)["ann"][0] == 2.0
    assert "ann" not in berlin.spend("user", start, end, NOW)
    engine.dispose()
