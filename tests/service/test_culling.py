"""Idle shutdown: the pure policy, and passes of the culler (jupyterhub-idle-culler's loop
with our arbiter) against a stand-in hub, on an injected clock."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from mlfactory.service.culler import Culler
from mlfactory.service.culling import Facts, Limits, Report, decide, duration, limits_for
from mlfactory.service.hubapi import HubAPI
from mlfactory.service.periods import iso_utc

from .helpers import T0, platform_with

M, H = 60, 3600
LIMITS = Limits(idle_timeout=H, max_age=0, warn_before=10 * M, gpu_idle_percent=5)


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


# --- the pure policy ------------------------------------------------------------------------


def test_limits_come_from_the_profile_then_the_group_then_the_defaults():
    cfg = platform_with(
        culling={
            "idle_timeout": "1h",
            "max_age": "1d",
            "profiles": {"gpu-t4": {"idle_timeout": "30m"}},
            "groups": {"ml-engineering": {"idle_timeout": "2h", "max_age": "12h"}},
            "exempt_users": ["vip"],
        }
    )
    assert limits_for(cfg, "ann", "cpu-small", []).idle_timeout == H
    assert limits_for(cfg, "ann", "cpu-small", ["ml-engineering"]).idle_timeout == 2 * H
    gpu = limits_for(cfg, "ann", "gpu-t4", ["ml-engineering"])
    assert (gpu.idle_timeout, gpu.max_age) == (30 * M, 12 * H)  # profile wins, group's age
    assert limits_for(cfg, "vip", "cpu-small", []).exempt


def report(at, **kw) -> Report:
    return Report(at=at, **kw)


def case(minutes: float, action: str, reason: str, **facts) -> tuple:
    """A server started at T0, judged ``minutes`` later; ``report`` fields by keyword."""
    now = T0 + minutes * M
    fields = {k: facts.pop(k) for k in list(facts) if k in Report.__dataclass_fields__}
    at = fields.pop("at", now)
    return Facts(T0, report=Report(at=at, **fields), **facts), now, action, reason


@pytest.mark.parametrize(
    ("facts", "now", "action", "reason"),
    [
        # idle: kernel last used at T0, warned 50 minutes on, stopped at the hour
        case(49, "keep", "active", last_kernel_activity=T0),
        case(50, "warn", "idle for 1h", last_kernel_activity=T0),
        case(60, "stop", "idle for 1h", last_kernel_activity=T0, warned_at=T0 + 50 * M),
        # an open tab (the hub's last_activity) is not activity when the server reports
        case(120, "warn", "idle", hub_last_activity=T0 + 2 * H),
        # without a fresh report the hub's last_activity is all there is
        case(120, "keep", "active", hub_last_activity=T0 + 2 * H, at=T0),
        # a busy kernel keeps a CPU server
        case(540, "keep", "kernel is busy", busy_kernels=1),
        # GPUs idle below the threshold: idle even with a busy kernel
        case(120, "warn", "GPUs were below 5%", busy_kernels=1, gpu_util=(1.0,), gpu_busy_at=T0),
        case(120, "keep", "GPUs are busy", gpu_util=(80.0,)),
        # "Keep running" restarts the idle clock
        case(120, "keep", "active", keepalive_at=T0 + 90 * M, warned_at=T0 + 80 * M),
    ],
)
def test_decide(facts, now, action, reason):
    d = decide(facts, LIMITS, now, watching_since=T0 - H, grace=330)
    assert d.action == action, d
    assert reason in d.reason


def test_a_late_warning_still_gives_the_full_warning_time():
    # the service was down: first seen 3 hours idle; warned now, stopped only 10 minutes on
    f = Facts(T0, report=report(T0 + 3 * H, last_kernel_activity=T0))
    d = decide(f, LIMITS, T0 + 3 * H, watching_since=T0, grace=0)
    assert d.action == "warn" and d.deadline == T0 + 3 * H + 10 * M
    f2 = Facts(T0, report=f.report, warned_at=d.warned_at)
    assert decide(f2, LIMITS, T0 + 3 * H + 9 * M, T0, 0).action == "warn"
    assert decide(f2, LIMITS, T0 + 3 * H + 10 * M, T0, 0).action == "stop"


def test_maximum_age_stops_even_a_busy_server_and_cannot_be_put_off():
    limits = Limits(H, 8 * H, 10 * M, 5)
    busy = report(T0 + 8 * H, busy_kernels=1)
    d = decide(Facts(T0, report=busy, keepalive_at=T0 + 8 * H), limits, T0 + 7 * H + 50 * M, T0, 0)
    assert (d.action, d.cause) == ("warn", "max_age")
    d = decide(Facts(T0, report=busy, warned_at=d.warned_at), limits, T0 + 8 * H, T0, 0)
    assert d.action == "stop" and "maximum age of 8h" in d.reason


def test_nothing_is_judged_right_after_a_restart_and_exempt_users_are_kept():
    idle = Facts(T0, report=report(T0 + 5 * H, last_kernel_activity=T0))
    assert (
        decide(idle, LIMITS, T0 + 5 * H, watching_since=T0 + 5 * H - 60, grace=330).action == "keep"
    )
    exempt = Limits(H, 0, 10 * M, 5, exempt=True)
    assert decide(idle, exempt, T0 + 5 * H, watching_since=T0, grace=0).action == "keep"


def test_durations_read_well():
    assert [duration(s) for s in (45, 60, 5400, 90000)] == ["45s", "1m", "1h 30m", "1d 1h"]


# --- passes against a stand-in hub -------------------------------------------------------------


@pytest.fixture
def make_culler(store, clock, fake_hub):
    def make(**culling) -> Culler:
        cfg = platform_with(culling={"grace_after_restart": 0, "warn_before": "10m", **culling})
        hub = HubAPI(fake_hub, "service-token")
        return Culler(store.engine, cfg, hub=hub, hub_url=fake_hub, token="t", clock=clock)

    return make


def ledger(user, price=0.2, profile="cpu-medium", key="k" * 16) -> dict:
    return {"key": key, "user": user, "price_per_hour": price, "profile": profile,
            "project": "", "groups": ["data-science"]}  # fmt: skip


async def test_an_idle_server_is_warned_then_stopped_and_the_reason_kept(
    make_culler, hub_state, clock
):
    culler = make_culler()
    hub_state.add_user("ann", groups=("data-science",))
    hub_state.run_server("ann", "", ledger("ann"), iso(T0), last_activity=iso(T0 + 5 * H))
    clock.advance(50 * M)
    await culler.record_report("ann", {"server_name": "", "kernels": [
        {"execution_state": "idle", "last_activity": iso(T0)}]})  # fmt: skip
    assert (await culler.run_pass())["warned"] == 1
    status = await culler.status("ann", "")
    assert status["action"] == "warn" and status["deadline"] == iso_utc(T0 + H)
    assert status["reason"] == "it was idle for 1h"
    clock.advance(10 * M)
    await culler.record_report("ann", {"server_name": ""})
    assert (await culler.run_pass())["stopped"] == 1
    assert hub_state.stopped == [("ann", "")]
    (stop,) = (await culler.status("ann", None))["stops"]
    assert stop["reason"] == "it was idle for 1h"


async def test_a_busy_kernel_is_kept(make_culler, hub_state, clock):
    culler = make_culler()
    hub_state.add_user("bob")
    hub_state.run_server("bob", "train", ledger("bob"), iso(T0))
    clock.advance(6 * H)
    await culler.record_report("bob", {"server_name": "train", "kernels": [
        {"execution_state": "busy", "last_activity": iso(T0)}]})  # fmt: skip
    result = await culler.run_pass()
    assert result["stopped"] == 0 and result["warned"] == 0 and hub_state.stopped == []


async def test_an_idle_gpu_is_stopped_although_a_tab_is_open(make_culler, hub_state, clock):
    culler = make_culler(profiles={"gpu-t4": {"idle_timeout": "30m"}})
    hub_state.add_user("cy")
    hub_state.run_server("cy", "", ledger("cy", 0.6, "gpu-t4"), iso(T0))
    for minutes, stopped in ((20, []), (30, [("cy", "")])):  # warned at 20, stopped at 30
        clock.set(T0 + minutes * M)
        hub_state.users["cy"]["servers"][""]["last_activity"] = iso(clock())  # the open tab
        await culler.record_report("cy", {"server_name": "", "gpu_util": [2.0],
                                          "kernels": [{"execution_state": "busy"}]})  # fmt: skip
        await culler.run_pass()
        assert hub_state.stopped == stopped


async def test_keep_running_restarts_the_clock_within_limits(service, hub_state, clock):
    svc = await service(platform_with(culling={"grace_after_restart": 0, "keep_alive_limit": 1}))
    token = hub_state.add_user("dee")
    hub_state.run_server("dee", "", ledger("dee"), iso(T0))
    code, _, _ = await svc.call("POST", "/api/activity", token=token, body={"server_name": ""})
    assert code == 204
    clock.advance(55 * M)
    await svc.culler.run_pass()
    code, body, _ = await svc.call("GET", "/api/culling/status?server_name=", token=token)
    assert body["action"] == "warn" and body["keep_alive_left"] == 1
    code, body, _ = await svc.call(
        "POST", "/api/culling/keepalive", token=token, body={"server_name": ""}
    )
    assert code == 200 and body == {"deadline": None, "keep_alive_left": 0}
    clock.advance(5 * M)  # past the old deadline: kept, because the clock restarted
    await svc.culler.run_pass()
    assert hub_state.stopped == []
    clock.advance(50 * M)
    await svc.culler.run_pass()  # idle again: warned again, and no press is left
    code, body, _ = await svc.call(
        "POST", "/api/culling/keepalive", token=token, body={"server_name": ""}
    )
    assert code == 409 and "used 1 times" in body["error"]


async def test_the_hub_down_fails_a_pass_without_harm(make_culler, hub_state, clock):
    culler = make_culler()
    hub_state.add_user("eve")
    hub_state.run_server("eve", "", ledger("eve"), iso(T0))
    hub_state.down = True
    clock.advance(2 * H)
    result = await culler.run_pass()
    assert result["ok"] is False and hub_state.stopped == []
    hub_state.down = False
    assert (await culler.run_pass())["ok"] is True


async def test_right_after_a_restart_nothing_is_stopped(store, clock, fake_hub, hub_state):
    cfg = platform_with(culling={"grace_after_restart": "330s"})
    hub_state.add_user("fay")
    hub_state.run_server("fay", "", ledger("fay"), iso(T0))
    clock.advance(5 * H)
    culler = Culler(store.engine, cfg, hub=HubAPI(fake_hub, "t"), hub_url=fake_hub, token="t",
                    clock=clock)  # fmt: skip
    await culler.run_pass()
    assert (await culler.status("fay", ""))["action"] == "keep"
    clock.advance(331)
    await culler.run_pass()
    assert (await culler.status("fay", ""))["action"] == "warn"


async def test_stops_report_money_saved_per_team_and_month(service, hub_state, clock):
    svc = await service(platform_with(culling={"grace_after_restart": 0, "warn_before": "1m"}))
    admin = hub_state.add_user("root", admin=True)
    hub_state.add_user("gus", groups=("data-science",))
    hub_state.run_server("gus", "", ledger("gus", price=0.5), iso(T0))
    clock.advance(H)
    await svc.culler.run_pass()
    clock.advance(60)
    await svc.culler.run_pass()
    assert hub_state.stopped == [("gus", "")]
    clock.advance(4 * H)  # not started again since: 4 hours not run at 0.50
    code, body, _ = await svc.call("GET", "/api/culling/stops", token=admin)
    assert code == 200, body
    (stop,) = body["stops"]
    assert stop["hours_not_run"] == pytest.approx(4.0) and stop["saved"] == pytest.approx(2.0)
    assert body["by_team_month"] == [
        {"group": "data-science", "month": "2026-11", "stops": 1, "saved": 2.0}
    ]
    plain = hub_state.add_user("hal")
    code, body, _ = await svc.call("GET", "/api/culling/stops", token=plain)
    assert code == 403
    # the dashboard shows the stop, its reason and the money saved
    code, page, _ = await svc.call("GET", "/dashboard", token=admin)
    assert code == 200 and 'id="idle-stops"' in page
    assert "it was idle for 1h" in page and "2.00 USD</strong> saved" in page
    assert 'id="chart-saved"' in page


async def test_a_stop_the_hub_refuses_is_not_recorded(service, hub_state, clock):
    """The arbiter says stop, the hub's DELETE fails: the server still runs, so it is not
    listed as stopped (no money "saved"), stays warned, and the next pass stops it."""
    svc = await service(platform_with(culling={"grace_after_restart": 0, "warn_before": "1m"}))
    admin = hub_state.add_user("root", admin=True)
    ivy = hub_state.add_user("ivy", groups=("data-science",))
    hub_state.run_server("ivy", "", ledger("ivy", price=0.5), iso(T0))
    hub_state.refuse_stop.add(("ivy", ""))
    clock.advance(H)
    await svc.culler.run_pass()  # warned
    clock.advance(60)
    result = await svc.culler.run_pass()  # stop asked; the hub answers 500
    assert result["ok"] is True and result["stopped"] == 0
    assert hub_state.users["ivy"]["servers"][""]["ready"] and hub_state.stopped == []
    clock.advance(4 * H)
    code, body, _ = await svc.call("GET", "/api/culling/stops", token=admin)
    assert code == 200 and body["stops"] == [] and body["by_team_month"] == []
    code, status, _ = await svc.call("GET", "/api/culling/status?server_name=", token=ivy)
    assert status["action"] == "warn" and status["last_stop"] is None
    code, page, _ = await svc.call("GET", "/dashboard", token=admin)
    assert "it was idle for 1h" not in page

    hub_state.refuse_stop.clear()  # the hub can stop it now: the next pass does, once
    result = await svc.culler.run_pass()
    assert result["stopped"] == 1 and hub_state.stopped == [("ivy", "")]
    code, body, _ = await svc.call("GET", "/api/culling/stops", token=admin)
    (stop,) = body["stops"]
    assert stop["reason"] == "it was idle for 1h" and stop["stopped_at"] == iso_utc(clock())
    code, status, _ = await svc.call("GET", "/api/culling/status?server_name=", token=ivy)
    assert status["action"] == "keep" and status["last_stop"]["reason"] == "it was idle for 1h"


async def test_nothing_is_stopped_during_the_grace_after_the_hub_returns(
    store, clock, fake_hub, hub_state
):
    """The hub is down during a pass: activity reached nobody while it was away, so for
    ``grace_after_restart`` after it answers again nothing is judged, then the user gets
    the full warning before any stop."""
    cfg = platform_with(culling={"grace_after_restart": "330s", "warn_before": "10m"})
    culler = Culler(store.engine, cfg, hub=HubAPI(fake_hub, "t"), hub_url=fake_hub, token="t",
                    clock=clock)  # fmt: skip
    hub_state.add_user("jo")
    hub_state.run_server("jo", "", ledger("jo"), iso(T0))
    clock.advance(50 * M)
    await culler.run_pass()
    assert (await culler.status("jo", ""))["action"] == "warn"  # to stop at T0 + 1h
    hub_state.down = True
    clock.advance(20 * M)  # past the deadline while the hub is down
    assert (await culler.run_pass())["ok"] is False
    hub_state.down = False
    clock.advance(60)
    await culler.run_pass()
    status = await culler.status("jo", "")
    assert hub_state.stopped == [] and status["action"] == "keep"
    assert "after a restart" in status["reason"]
    clock.advance(329)  # 329 s after it answered again
    await culler.run_pass()
    assert hub_state.stopped == []
    clock.advance(2)  # the grace is over: warned again, with the full warning time
    await culler.run_pass()
    status = await culler.status("jo", "")
    assert hub_state.stopped == [] and status["action"] == "warn"
    assert status["deadline"] == iso_utc(clock() + 10 * M)
    clock.advance(10 * M)
    await culler.run_pass()
    assert hub_state.stopped == [("jo", "")]
