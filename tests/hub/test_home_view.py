"""The home page's content from the platform service's ``/api/home`` answer
(hub_config/home_view.py): servers with uptime and cost, budgets, and the notices."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest
from mlfactory.hub.home_view import UNAVAILABLE, home_view, uptime, when

NOW = datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp()


def standing(kind: str, name: str, spent: float, amount: float, **kw) -> dict:
    return {"kind": kind, "name": name, "amount": amount, "period": "monthly",
            "enforcement": kw.get("enforcement", "block"), "thresholds": [0.5, 0.8, 1.0],
            "grace_seconds": 900, "notify": [], "source": "config", "spent": spent,
            "fraction": spent / amount, "period_start": "2026-11-01T00:00:00Z",
            "resets_at": kw.get("resets_at", "2026-12-01T00:00:00Z")}  # fmt: skip


def server(name: str, hours: float, price: float, **kw) -> dict:
    return {"user": "alice", "server_name": name, "project": kw.get("project", ""),
            "profile": kw.get("profile", "cpu-small"), "resources": {}, "price_per_hour": price,
            "started": "2026-11-10T10:00:00Z", "hours": hours, "cost_so_far": hours * price,
            "orphaned": kw.get("orphaned", False)}  # fmt: skip


def answer(**kw) -> dict:
    return {"user": "alice", "currency": "EUR", "timezone": "UTC", "budgets": [], "notices": [],
            "servers": [], "culling": {"servers": [], "stops": []}, **kw}  # fmt: skip


@pytest.mark.parametrize(
    ("hours", "text"),
    [(0, "under a minute"), (0.01, "under a minute"), (0.5, "30 min"), (1.51, "1 h 30 min"),
     (2, "2 h 0 min"), (25.5, "1 d 1 h"), (-3, "under a minute")],
)  # fmt: skip
def test_uptime(hours, text):
    assert uptime(hours) == text


def test_when_gives_the_date_only_on_other_days():
    berlin = ZoneInfo("Europe/Berlin")
    assert when("2026-11-10T12:30:00Z", NOW, ZoneInfo("UTC")) == "12:30 UTC"
    assert when("2026-11-10T12:30:00Z", NOW, berlin) == "13:30 CET"
    assert when("2026-11-09T12:30:00Z", NOW, berlin) == "2026-11-09 13:30 CET"
    assert when("not a time", NOW, berlin) == "soon"


def test_no_answer_is_unavailable_not_empty():
    assert home_view(None, NOW) is UNAVAILABLE and not UNAVAILABLE.available
    assert home_view(answer(), NOW).available


def test_servers_show_profile_uptime_and_cost_in_the_products_money_format():
    view = home_view(
        answer(
            servers=[
                server("train", 1500.25, 2.0, project="churn", profile="gpu-t4"),
                server("", 0.25, 0.05),
            ]
        ),  # fmt: skip
        NOW,
    )
    default, train = view.servers
    assert (default.name, default.label, default.profile) == ("", "default server", "cpu-small")
    assert (default.uptime, default.cost, default.price) == ("15 min", "0.01 EUR", "0.05 EUR/hour")
    assert (train.label, train.project, train.profile) == ("train", "churn", "gpu-t4")
    assert (train.uptime, train.cost) == ("62 d 12 h", "3,000.50 EUR")
    assert not train.note


def test_an_orphaned_server_says_it_will_be_stopped():
    (s,) = home_view(answer(servers=[server("x", 1, 1, orphaned=True)]), NOW).servers
    assert "stops it soon" in s.note


def test_budgets_closest_to_the_limit_first_with_levels_and_local_reset_day():
    view = home_view(
        answer(
            timezone="Europe/Berlin",
            budgets=[standing("project", "churn", 10, 100),
                     standing("group", "data-science", 85, 100),
                     standing("user", "alice", 120, 100, enforcement="alert",
                              resets_at="2026-11-30T23:00:00Z")],
        ),
        NOW,
    )  # fmt: skip
    assert [(b.label, b.level, b.percent) for b in view.budgets] == [
        ("Your monthly budget", "over", 120),
        ("Team data-science monthly budget", "warn", 85),
        ("Project churn monthly budget", "ok", 10),
    ]
    assert view.budgets[0].spent == "120.00 of 100.00 EUR"
    assert view.budgets[0].resets == "2026-12-01"  # midnight in Berlin, not the UTC day
    assert view.budgets[0].enforcement == "alert"


def test_one_budget_notice_per_budget_the_highest_threshold_most_severe_first():
    notices = [
        {"id": 1, "kind": "user", "name": "alice", "threshold": 0.5, "message": "alice 50%",
         "fired_at": "2026-11-10T10:00:00Z"},
        {"id": 2, "kind": "user", "name": "alice", "threshold": 1.0, "message": "alice 100%",
         "fired_at": "2026-11-10T11:00:00Z"},
        {"id": 3, "kind": "group", "name": "ds", "threshold": 0.8, "message": "ds 80%",
         "fired_at": "2026-11-10T11:00:00Z"},
    ]  # fmt: skip
    view = home_view(answer(notices=notices, budgets=[standing("user", "alice", 12, 10)]), NOW)
    assert [(n.kind, n.level, n.lines[0]) for n in view.notices] == [
        ("budget", "danger", "alice 100%"),
        ("budget", "warning", "ds 80%"),
    ]
    assert view.notices[0].lines[1] == "Spent 12.00 of 10.00 EUR (120%); resets 2026-12-01."
    assert len(view.notices[1].lines) == 1  # no standing for that budget in the answer


def test_idle_shutdown_warnings_then_recent_stops_of_servers_not_running_again():
    culling = {
        "servers": [
            {"server_name": "", "action": "warn", "reason": "it was idle for 1h",
             "deadline": "2026-11-10T12:10:00Z", "keep_alive_left": 1},
            {"server_name": "busy", "action": "keep", "reason": "a kernel is busy",
             "deadline": None, "keep_alive_left": 3},
            {"server_name": "late", "action": "warn", "reason": "", "deadline": None,
             "keep_alive_left": 0},
        ],
        "stops": [
            {"server_name": "old", "stopped_at": "2026-11-09T08:00:00Z", "reason": "idle 1h"},
            {"server_name": "old", "stopped_at": "2026-11-10T08:00:00Z", "reason": "idle 2h"},
            {"server_name": "busy", "stopped_at": "2026-11-10T09:00:00Z", "reason": "idle"},
            {"server_name": "again", "stopped_at": "2026-11-10T09:00:00Z", "reason": "idle"},
            {"server_name": "ancient", "stopped_at": "2026-10-01T09:00:00Z", "reason": "idle"},
        ],
    }  # fmt: skip
    view = home_view(answer(culling=culling, servers=[server("again", 0.1, 1)]), NOW)
    assert [(n.kind, n.level, n.lines) for n in view.notices] == [
        ("culling", "warning", (
            "Your server will be stopped at 12:10 UTC because it was idle for 1h.",
            "Open it and press \u201cKeep running\u201d to keep it (1 press left).")),
        ("culling", "warning", (
            "Your server \u201clate\u201d will be stopped soon.",
            "No \u201cKeep running\u201d presses are left: save your work.")),
        ("culling", "info", (
            "Your server \u201cold\u201d was stopped at 08:00 UTC because idle 2h.",)),
    ]  # fmt: skip


@pytest.mark.parametrize(
    "broken",
    [{"servers": "x"}, {"budgets": [1, None]}, {"culling": None}, {"timezone": "Mars/Base"},
     {"servers": [{"server_name": None, "hours": "many", "cost_so_far": True}]}],
)  # fmt: skip
def test_odd_answers_do_not_break_the_page(broken):
    view = home_view(answer(**broken), NOW)
    assert view.available
