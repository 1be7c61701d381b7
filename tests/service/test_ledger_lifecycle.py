"""The ledger's lifecycle between the spawner and the platform service, on an injected clock
with the stand-in hub: a spawn the gate refuses is never charged, whatever a reconcile saw
of it and in whichever order; a server that never became ready costs nothing; a stop is
reflected at once; orphans are shown to admins, then stopped after the grace period.

The real hub runs the same paths in ``tests/e2e/test_ledger.py``; here the order of the
gate and a reconcile tick is forced, which a real hub leaves to chance.
"""

from __future__ import annotations

import os
import signal
import subprocess
from datetime import UTC, datetime

import pytest
from mlfactory.service.accounting import GateRequest
from mlfactory.service.reconcile import (
    OpenSession,
    Sighting,
    backend_sighting,
    merge,
    orphans,
    plan,
)
from mlfactory.spawner.budget_gate import ServiceGate
from mlfactory.spawner.journal import Record, process_start, record_of, session_fields, stop_process

from .helpers import SECRET, platform_with

H = 3600
KEY = "k" * 32


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).isoformat().replace("+00:00", "Z")


def dana_ledger(key: str = KEY, price: float = 0.05, **extra) -> dict:
    """What the spawner keeps in its state (``state.mlfactory.ledger``) during a spawn."""
    return {
        "key": key,
        "user": "dana",
        "server_name": "",
        "project": "personal",
        "profile": "cpu-small",
        "price_per_hour": price,
        "resources": {"cpu": 1},
        "groups": ["data-science"],
        **extra,
    }


def spawn_pending(hub_state, user: str, server_name: str, ledger: dict, started: float) -> None:
    """What JupyterHub's REST API shows while a spawn is in progress: pending, not ready, and
    the spawner's live state (``get_state()``, with the ledger key made before the gate)."""
    hub_state.users[user]["servers"][server_name] = {
        "name": server_name,
        "ready": False,
        "pending": "spawn",
        "url": f"/user/{user}/{server_name + '/' if server_name else ''}",
        "started": iso(started),
        "last_activity": iso(started),
        "state": {"mlfactory": {"ledger": ledger}},
    }


def gate_request(ledger: dict) -> GateRequest:
    return GateRequest(
        key=ledger["key"],
        user=ledger["user"],
        server_name=ledger["server_name"],
        project=ledger["project"],
        profile=ledger["profile"],
        price_per_hour=ledger["price_per_hour"],
        groups=tuple(ledger["groups"]),
    )


def team_budget_platform(**changes):
    """dana's team may spend 0.01 a month (block): less than an hour of cpu-small."""
    import yaml
    from mlfactory.hub.platform_config import PACKAGED_CONFIG

    groups = yaml.safe_load(PACKAGED_CONFIG.read_text())["groups"]
    for g in groups:
        if g["name"] == "data-science":
            g["members"] = ["dana"]
            g["budget"] = {"amount": 0.01, "period": "monthly", "enforcement": "block"}
    return platform_with(groups=groups, **changes)


# --- the pure rules ----------------------------------------------------------------------


def seen(key: str, **kw) -> Sighting:
    return Sighting(key, "ann", "", 100, 1.0, **kw)


def test_a_starting_server_neither_opens_nor_confirms_a_session():
    starting = {"a": seen("a", starting=True), "b": seen("b", starting=True)}
    p = plan([OpenSession("b", 100, 100)], starting, known_keys={"b"}, now=5000)
    assert p.open == [] and p.seen == [] and p.close == []  # b: kept open, not confirmed
    ready = {"a": seen("a"), "b": seen("b")}
    p = plan([OpenSession("b", 100, 100)], ready, known_keys={"b"}, now=5000)
    assert [s.key for s in p.open] == ["a"] and p.seen == ["b"]


def test_a_session_nobody_saw_ready_closes_at_its_start():
    # the spawn was pending at every tick, then vanished without a word from the spawner
    p = plan([OpenSession("a", 100, 100)], {}, known_keys={"a"}, now=100 + 601, start_grace=600)
    assert p.close == [("a", 100, "not running")]
    # the backend recorded the stop of a server that never accepted connections
    stopped = {"a": seen("a", running=False, stopped_at=400, never_ready=True)}
    p = plan([OpenSession("a", 100, 100)], stopped, known_keys={"a"}, now=500)
    assert p.close == [("a", 100, "never ready")]


def test_merge_starting_only_while_every_view_says_so():
    hub_ready, hub_starting = seen("a"), seen("a", starting=True)
    backend_starting = seen("a", source="backend", starting=True)
    backend_ready = seen("a", source="backend")
    assert not merge([hub_ready], [backend_starting])["a"].starting
    assert not merge([hub_starting], [backend_ready])["a"].starting
    assert merge([hub_starting], [backend_starting])["a"].starting


def test_the_ledger_dict_its_record_and_its_sighting_are_one_session():
    ledger = dana_ledger(groups=["b", "a"], resources={"cpu": 1}, started=100.0, ready=False)
    record = record_of(ledger, os.getpid())
    starting, ended = backend_sighting(record, True), backend_sighting(record, False)
    expected = {k: v for k, v in ledger.items() if k != "ready"}
    assert session_fields(record) == session_fields(starting) == {**expected, "groups": ("b", "a")}
    assert (starting.source, starting.starting, starting.never_ready) == ("backend", True, False)
    assert (ended.running, ended.starting, ended.never_ready) == (False, False, True)
    old = backend_sighting(Record(KEY, "ann", "", 0, 1.0), False)  # a record without ``ready``
    assert not old.starting and not old.never_ready


def test_orphans_are_found_then_stopped_after_the_grace():
    live = [seen("o", source="backend"), seen("h", source="backend")]
    p = orphans(live, hub_keys={"h"}, marked={}, now=1000, grace=600)
    assert p.found == ["o"] and p.stop == [] and p.cleared == []
    p = orphans(live, hub_keys={"h"}, marked={"o": 1000}, now=1599, grace=600)
    assert p.found == [] and p.stop == []
    p = orphans(live, hub_keys={"h"}, marked={"o": 1000}, now=1600, grace=600)
    assert p.stop == ["o"]


def test_an_orphan_the_hub_lists_again_or_that_ended_is_cleared():
    live = [seen("o", source="backend"), seen("gone", source="backend", running=False)]
    p = orphans(live, hub_keys={"o"}, marked={"o": 1000, "gone": 1000}, now=5000, grace=600)
    assert p.stop == [] and p.found == [] and sorted(p.cleared) == ["gone", "o"]


# --- a refused spawn is never charged ------------------------------------------------------


async def test_a_reconcile_that_saw_the_spawn_pending_never_charges_a_refusal(
    make_accountant, clock, hub_state, fake_hub
):
    """The CI flake: a tick read the hub's view while dana's spawn was pending (its ledger
    key already in the spawner's state), the gate refused the spawn, then the tick wrote
    its plan. The refusal must leave no row."""
    acc = make_accountant(team_budget_platform(), fake_hub)
    await acc.start()
    hub_state.add_user("dana", groups=("data-science",))
    ledger = dana_ledger()
    spawn_pending(hub_state, "dana", "", ledger, clock())
    verdicts = []
    read_hub = acc.hub.sightings

    async def read_then_gate():
        view = await read_hub()
        verdicts.append(await acc.gate(gate_request(ledger)))  # answered mid-tick
        return view

    acc.hub.sightings = read_then_gate  # forces the order a real hub leaves to chance
    await acc.tick()
    (verdict,) = verdicts
    assert not verdict.allowed and "budget of group 'data-science'" in verdict.message
    assert acc.store.known_keys([KEY]) == set()  # nothing started, nothing charged

    acc.hub.sightings = read_hub
    await acc.tick()  # the hub still shows the spawn pending: still nothing
    assert acc.store.known_keys([KEY]) == set()


async def test_a_reconcile_before_the_gate_does_not_admit_the_spawn(
    make_accountant, clock, hub_state, fake_hub
):
    acc = make_accountant(team_budget_platform(), fake_hub)
    await acc.start()
    hub_state.add_user("dana", groups=("data-science",))
    ledger = dana_ledger()
    spawn_pending(hub_state, "dana", "", ledger, clock())
    await acc.tick()  # sees the spawn pending before its gate request arrives
    verdict = await acc.gate(gate_request(ledger))
    assert not verdict.allowed  # not taken for "already admitted"
    assert acc.store.known_keys([KEY]) == set()


# --- a server that never became ready costs nothing ---------------------------------------


async def test_a_spawn_that_times_out_costs_nothing(service, hub_state, clock):
    svc = await service()
    acc = svc.accountant
    hub_state.add_user("dana", groups=("data-science",))
    ledger = dana_ledger(price=36.0)
    gate = ServiceGate(svc.url, SECRET)
    spawner = type("Spawner", (), {"ledger": ledger})()
    assert await gate(spawner, type("Request", (), {"price_per_hour": 36.0})()) is None
    spawn_pending(hub_state, "dana", "", ledger, clock())
    for _ in range(3):  # pending through several ticks: kept open, never confirmed
        clock.advance(20)
        await acc.tick()
    assert [r["key"] for r in acc.store.open_sessions()] == [KEY]
    # the spawner gives up (start_timeout) and says it never accepted connections
    await gate.ended(KEY, clock(), "failed to start", never_ready=True)
    assert acc.store.open_sessions() == []
    assert acc.store.spend("user", 0, clock() + 1, clock()).get("dana", (0.0, 0.0))[0] == 0.0


async def test_a_lost_end_notice_of_a_server_that_never_became_ready_costs_nothing(
    make_accountant, clock, journal
):
    acc = make_accountant(platform_with())
    await acc.start()
    acc.store.open_session(
        Sighting(KEY, "dana", "", clock(), 36.0, source="gate"), clock(), durable=True
    )
    pid = os.getpid()
    journal.write(
        Record(KEY, "dana", "", clock(), 36.0, pid=pid, pid_start=process_start(pid), ready=False)
    )
    clock.advance(60)
    await acc.tick()  # starting: kept open, not charged
    assert [r["key"] for r in acc.store.open_sessions()] == [KEY]
    journal.mark_stopped(KEY, clock())  # the spawner's notice to the service was lost
    clock.advance(60)
    await acc.tick()
    assert acc.store.open_sessions() == []
    assert acc.store.spend("user", 0, clock() + 1, clock()).get("dana", (0.0, 0.0))[0] == 0.0
    assert journal.records() == []  # the ledger is done with it


async def test_the_end_notice_checks_never_ready(service):
    svc = await service()
    code, body, _ = await svc.call(
        "POST", f"/api/sessions/{KEY}/end", secret=SECRET, body={"never_ready": "yes"}
    )
    assert code == 400 and body["field"] == "never_ready"


# --- orphans ------------------------------------------------------------------------------


@pytest.fixture
def server_process():
    """A real process standing in for a server left running (its own session, as the
    spawner starts servers)."""
    procs = []

    def start() -> subprocess.Popen:
        proc = subprocess.Popen(["sleep", "600"], start_new_session=True)
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def orphan_record(proc: subprocess.Popen, started: float, ready: bool = True) -> Record:
    return Record(
        KEY,
        "ann",
        "nb",
        started,
        2.0,
        pid=proc.pid,
        pid_start=process_start(proc.pid),
        ready=ready,
    )


async def test_an_orphan_is_shown_to_admins_then_stopped_after_the_grace(
    service, hub_state, clock, journal, server_process
):
    svc = await service(platform_with(accounting={"orphan_grace": "10m"}))
    acc = svc.accountant
    admin = hub_state.add_user("root", admin=True)
    hub_state.add_user("ann")
    proc = server_process()
    journal.write(orphan_record(proc, clock()))

    await acc.tick()  # running, charged, and unknown to the hub
    code, body, _ = await svc.call("GET", "/api/servers", token=admin)
    assert code == 200
    (server,) = body["servers"]
    assert server["orphaned"] is True and server["stops_at"] == iso(clock() + 600)

    clock.advance(599)
    await acc.tick()
    assert proc.poll() is None  # still within its grace

    clock.advance(1)
    await acc.tick()  # stopped by the service, session closed as "orphaned"
    assert proc.wait(timeout=30) == -signal.SIGTERM
    (row,) = [r for r in acc.store.usage("server", 0, clock() + 1, clock(), _everyone())]
    assert row["cost"] == pytest.approx(2.0 * 600 / H, abs=1e-4)  # it ran: charged until then
    code, body, _ = await svc.call("GET", "/api/servers", token=admin)
    assert body["servers"] == []
    assert _end_reason(acc, KEY) == "orphaned"
    await acc.tick()
    assert journal.records() == [] and journal.orphan_marks() == {}


async def test_an_orphan_that_never_became_ready_costs_nothing(
    make_accountant, clock, hub_state, fake_hub, journal, server_process
):
    acc = make_accountant(platform_with(accounting={"orphan_grace": "10m"}), fake_hub)
    await acc.start()
    hub_state.add_user("ann")
    acc.store.open_session(
        Sighting(KEY, "ann", "nb", clock(), 2.0, source="gate"), clock(), durable=True
    )
    proc = server_process()
    journal.write(orphan_record(proc, clock(), ready=False))  # the hub died mid-spawn
    await acc.tick()
    assert KEY in acc.orphans
    clock.advance(600)
    await acc.tick()
    assert proc.wait(timeout=30) == -signal.SIGTERM
    assert acc.store.open_sessions() == [] and _end_reason(acc, KEY) == "orphaned"
    assert acc.store.spend("user", 0, clock() + 1, clock()).get("ann", (0.0, 0.0))[0] == 0.0


async def test_a_server_the_hub_lists_again_is_no_orphan(
    make_accountant, clock, hub_state, fake_hub, journal, server_process
):
    acc = make_accountant(platform_with(accounting={"orphan_grace": "10m"}), fake_hub)
    await acc.start()
    hub_state.add_user("ann")
    proc = server_process()
    journal.write(orphan_record(proc, clock()))
    await acc.tick()
    assert KEY in acc.orphans
    # e.g. a spawn the hub showed only after this tick read its view: listed again
    hub_state.run_server("ann", "nb", {"key": KEY, "price_per_hour": 2.0}, iso(clock()))
    clock.advance(300)
    await acc.tick()
    assert acc.orphans == {} and journal.orphan_marks() == {}
    clock.advance(H)
    await acc.tick()
    assert proc.poll() is None


async def test_an_incomplete_list_from_the_hub_stops_nothing(
    make_accountant, clock, hub_state, fake_hub, journal, server_process
):
    """Before the stop, the service asks the hub about the orphan's user alone: a list of
    every user that missed the server (a fault) does not get it killed."""
    acc = make_accountant(platform_with(accounting={"orphan_grace": "10m"}), fake_hub)
    await acc.start()
    hub_state.add_user("ann")
    hub_state.run_server("ann", "nb", {"key": KEY, "price_per_hour": 2.0}, iso(clock()))
    proc = server_process()
    journal.write(orphan_record(proc, clock()))
    read_hub = acc.hub.sightings

    async def missing_ann():
        view, groups = await read_hub()
        return [s for s in view if s.user != "ann"], groups

    acc.hub.sightings = missing_ann
    await acc.tick()
    assert KEY in acc.orphans
    clock.advance(600)
    await acc.tick()
    assert proc.poll() is None and KEY not in acc.orphans
    assert acc.store.open_sessions()[0]["key"] == KEY


async def test_the_hub_down_decides_nothing_about_orphans(
    make_accountant, clock, hub_state, fake_hub, journal, server_process
):
    acc = make_accountant(platform_with(accounting={"orphan_grace": "10m"}), fake_hub)
    await acc.start()
    proc = server_process()
    journal.write(orphan_record(proc, clock()))
    hub_state.down = True
    for _ in range(3):
        await acc.tick()
        clock.advance(H)
    assert acc.orphans == {} and journal.orphan_marks() == {} and proc.poll() is None


def test_stop_process_signals_only_the_recorded_process(server_process):
    proc = server_process()
    reused = Record(KEY, "ann", "", 0, 1.0, pid=proc.pid, pid_start="1")  # another start time
    assert stop_process(reused, wait=1) is True  # "gone" as far as the record goes
    assert proc.poll() is None
    me = Record(KEY, "ann", "", 0, 1.0, pid=os.getpid(), pid_start=process_start(os.getpid()))
    assert stop_process(me, wait=1) is False  # never this process (or its group)


def _everyone():
    from mlfactory.service.store import Visibility

    return Visibility(everyone=True)


def _end_reason(acc, key: str) -> str | None:
    from mlfactory.service.db import LedgerSession
    from sqlalchemy import select

    with acc.store.engine.connect() as conn:
        return conn.execute(
            select(LedgerSession.end_reason).where(LedgerSession.key == key)
        ).scalar_one()
