"""The pure rules: periods, cost in a window, the gate, thresholds, stops, reconcile plans."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from mlfactory.service.budgets import (
    Charge,
    Rule,
    Scope,
    Standing,
    commitment,
    cost_in_window,
    crossed,
    gate,
    scopes_of,
    stop_action,
)
from mlfactory.service.periods import day_starts, period_bounds
from mlfactory.service.reconcile import OpenSession, Sighting, merge, plan

BERLIN = ZoneInfo("Europe/Berlin")
H = 3600


def ts(*args, tz=UTC) -> float:
    return datetime(*args, tzinfo=tz).timestamp()


@pytest.mark.parametrize(
    ("period", "now", "start", "end"),
    [
        ("monthly", ts(2026, 11, 26, 12), ts(2026, 11, 1), ts(2026, 12, 1)),
        ("monthly", ts(2026, 12, 31, 23, 59), ts(2026, 12, 1), ts(2027, 1, 1)),
        ("weekly", ts(2026, 11, 26, 12), ts(2026, 11, 23), ts(2026, 11, 30)),  # Thu → Mon
        ("weekly", ts(2026, 11, 23, 0), ts(2026, 11, 23), ts(2026, 11, 30)),  # Monday 00:00
    ],
)
def test_periods_are_calendar_aligned(period, now, start, end):
    assert period_bounds(period, now, ZoneInfo("UTC")) == (start, end)


def test_periods_follow_the_time_zone_across_daylight_saving():
    # 29 March 2026: Berlin moves from +01:00 to +02:00; March has 743 hours there
    start, end = period_bounds("monthly", ts(2026, 3, 30, 12, tz=BERLIN), BERLIN)
    assert start == ts(2026, 3, 1, tz=BERLIN) and end == ts(2026, 4, 1, tz=BERLIN)
    assert (end - start) / H == 743
    # 23:30 UTC on 31 March is already April in Berlin
    assert period_bounds("monthly", ts(2026, 3, 31, 23, 30), BERLIN)[0] == ts(2026, 4, 1, tz=BERLIN)
    assert len(day_starts(start, end, BERLIN)) == 31


def test_cost_is_clipped_to_the_window_and_to_now():
    c = Charge(started=ts(2026, 10, 31, 22), ended=None, price_per_hour=2.0)
    nov = (ts(2026, 11, 1), ts(2026, 12, 1))
    assert cost_in_window(c, *nov, now=ts(2026, 11, 1, 3)) == pytest.approx(6.0)
    assert cost_in_window(c, ts(2026, 10, 1), nov[0], now=ts(2026, 11, 1, 3)) == pytest.approx(4.0)
    done = Charge(ts(2026, 11, 2), ts(2026, 11, 2, 0, 30), 2.0)
    assert cost_in_window(done, *nov, now=ts(2026, 11, 20)) == pytest.approx(1.0)
    assert cost_in_window(done, ts(2026, 11, 3), ts(2026, 11, 4), now=ts(2026, 11, 20)) == 0.0


def test_commitment_reserves_the_rest_of_the_minimum_run():
    c = Charge(started=ts(2026, 11, 5, 10), ended=None, price_per_hour=1.0)
    nov = (ts(2026, 11, 1), ts(2026, 12, 1))
    # 15 minutes in: 0.25 spent, 0.75 still committed for the first hour
    assert commitment(c, *nov, now=ts(2026, 11, 5, 10, 15), minimum_run=H) == pytest.approx(1.0)
    # past the first hour the commitment is just what it spent
    assert commitment(c, *nov, now=ts(2026, 11, 5, 12), minimum_run=H) == pytest.approx(2.0)


def standing(amount, spent, committed=None, enforcement="block", scope=("user", "ann"), **kw):
    rule = Rule(Scope(*scope), amount, enforcement=enforcement, **kw)
    committed = spent if committed is None else committed
    return Standing(rule, ts(2026, 11, 1), ts(2026, 12, 1), spent, committed)


def test_gate_refuses_a_spawn_whose_minimum_run_would_cross_a_hard_budget():
    v = gate(0.5, [standing(10, 9.6)], minimum_run=H, currency="EUR")
    assert not v.allowed
    assert "budget of user 'ann' is 9.60 EUR spent of 10.00 EUR" in v.message
    assert "0.40 EUR is left" in v.message and "resets at 2026-12-01 00:00 UTC" in v.message
    assert gate(0.4, [standing(10, 9.6)], minimum_run=H, currency="EUR").allowed


def test_gate_counts_commitments_of_running_servers():
    # spent 9.0, but a server started a minute ago has 0.98 of its first hour committed
    assert not gate(0.5, [standing(10, 9.0, committed=9.98)], minimum_run=H, currency="X").allowed


def test_alert_budgets_only_warn_and_free_servers_always_start():
    v = gate(5, [standing(10, 9, enforcement="alert")], minimum_run=H, currency="X")
    assert v.allowed and len(v.warnings) == 1
    assert gate(0, [standing(10, 50)], minimum_run=H, currency="X").allowed


def test_thresholds_fire_once_each_lowest_first():
    s = standing(100, 85)
    assert crossed(s, fired=()) == [0.5, 0.8]
    assert crossed(s, fired=(0.5,)) == [0.8]
    assert crossed(s, fired=(0.5, 0.8)) == []
    assert crossed(standing(100, 100), fired=(0.5, 0.8)) == [1.0]


def test_stop_budgets_warn_then_stop_after_the_grace_period():
    s = standing(10, 10.2, enforcement="stop", grace=900)
    now = ts(2026, 11, 20)
    assert stop_action(s, None, now) == "warn"
    assert stop_action(s, now, now + 899) == "none"
    assert stop_action(s, now, now + 900) == "stop"
    assert stop_action(s, ts(2026, 10, 30), now) == "warn"  # last period's warning is void
    assert stop_action(standing(10, 9.9, enforcement="stop"), None, now) == "none"
    assert stop_action(standing(10, 12, enforcement="block"), None, now) == "none"


def test_a_server_charges_its_user_each_group_once_and_its_project():
    assert scopes_of("ann", ["b", "a", "b"], "churn") == [
        Scope("user", "ann"),
        Scope("group", "a"),
        Scope("group", "b"),
        Scope("project", "churn"),
    ]


def sighting(key, running=True, stopped_at=None, source="hub", started=100.0):
    return Sighting(
        key, "ann", "", started, 1.0, running=running, stopped_at=stopped_at, source=source
    )


def test_reconcile_opens_unknown_servers_and_never_reopens_closed_ones():
    seen = merge([sighting("a"), sighting("b")], [])
    p = plan([OpenSession("a", 100, 150)], seen, known_keys={"a", "b"}, now=200)
    assert p.seen == ["a"] and p.open == [] and p.close == []
    p = plan([], merge([sighting("c")], []), known_keys=set(), now=200)
    assert [s.key for s in p.open] == ["c"]


def test_reconcile_charges_a_process_the_hub_forgot():
    # jupyterhub #4574: the hub says stopped, the process still runs: keep charging
    seen = merge([], [sighting("a", source="backend")])
    p = plan([OpenSession("a", 100, 150)], seen, known_keys={"a"}, now=500)
    assert p.seen == ["a"] and p.close == []


def test_reconcile_closes_at_the_backends_stop_time_else_last_seen():
    seen = merge([sighting("a")], [sighting("a", running=False, stopped_at=180, source="backend")])
    p = plan([OpenSession("a", 100, 150)], seen, known_keys={"a"}, now=500)
    assert p.close == [("a", 180, "stopped")]
    p = plan([OpenSession("b", 100, 150)], {}, known_keys={"b"}, now=5000)
    assert p.close == [("b", 150, "not running")]


def test_reconcile_leaves_a_starting_server_alone_for_the_start_grace():
    p = plan([OpenSession("a", 100, 100)], {}, known_keys={"a"}, now=300, start_grace=600)
    assert p.close == []
    p = plan([OpenSession("a", 100, 100)], {}, known_keys={"a"}, now=800, start_grace=600)
    assert p.close == [("a", 100, "not running")]
