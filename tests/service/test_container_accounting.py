"""The accountant with the container backend, against a real engine (Podman's Docker API) and
the stand-in hub, on an injected clock: a labelled container the hub and the journal forgot
is found and billed from its label's start, then stopped and removed after the orphan grace
(its named volume kept); a container the hub lists is never touched; an exited container's
session ends at the engine's finish time; an engine that does not answer stops nothing,
closes nothing it cannot see, and the hub's servers are still billed.

Every container and volume here carries a label unique to the test, and the accountant's
engine view is narrowed to it: the engine is shared with other tests running at once."""

from __future__ import annotations

import logging
import subprocess
import time
import uuid

import pytest
from mlfactory.service.engine_view import EngineView
from mlfactory.spawner.container_labels import session_labels
from mlfactory.spawner.journal import Record, process_start

from .helpers import platform_with
from .test_ledger_lifecycle import _end_reason, iso

H = 3600
TEST_LABEL = "org.mlfactory.test-run"
# a server stand-in that ends on TERM, as a real server does (a bare ``sleep`` as PID 1
# ignores it, and every stop would wait out its timeout)
SERVER = ("sh", "-c", "trap 'exit 0' TERM; sleep 600 & wait")


class Containers:
    """Containers (``SERVER``) in the base image, labelled as the container backend labels
    a server, plus this test's own label."""

    def __init__(self, engine, image: str) -> None:
        self.engine, self.image = engine, image
        self.run_id = uuid.uuid4().hex
        self.view = EngineView(engine.url, labels={TEST_LABEL: self.run_id})

    def ledger(self, key: str, started: float, user: str = "ann", price: float = 2.0) -> dict:
        return {
            "key": key,
            "user": user,
            "server_name": "",
            "started": started,
            "price_per_hour": price,
            "project": "p",
            "profile": "small",
            "resources": {"cpu": 1},
            "groups": ["team-a"],
        }

    def run(self, ledger: dict, *extra: str, command: tuple[str, ...] = SERVER) -> str:
        labels = {**session_labels(ledger, "team-a"), TEST_LABEL: self.run_id}
        args = [a for k, v in labels.items() for a in ("--label", f"{k}={v}")]
        run = self.engine.podman("run", "-d", *args, *extra, self.image, *command)
        return run.stdout.strip()

    def volume(self) -> str:
        name = f"mlfactory-test-{self.run_id[:12]}"
        self.engine.podman("volume", "create", "--label", f"{TEST_LABEL}={self.run_id}", name)
        return name

    def state(self, cid: str) -> str | None:
        """The container's state, None once it is removed."""
        out = self.engine.podman("inspect", "--format", "{{.State.Status}}", cid, check=False)
        return out.stdout.strip() if out.returncode == 0 else None

    def volume_exists(self, name: str) -> bool:
        return self.engine.podman("volume", "exists", name, check=False).returncode == 0

    def clean(self) -> None:
        flt = f"label={TEST_LABEL}={self.run_id}"
        ids = self.engine.podman("ps", "-aq", "--filter", flt, check=False).stdout.split()
        if ids:
            self.engine.podman("rm", "-f", "-t", "0", *ids, check=False)
        vols = self.engine.podman("volume", "ls", "-q", "--filter", flt, check=False)
        if vols.stdout.split():
            self.engine.podman("volume", "rm", "-f", *vols.stdout.split(), check=False)


@pytest.fixture
def containers(container_engine, base_image):
    c = Containers(container_engine, base_image)
    yield c
    c.clean()


def _session(acc, key: str) -> dict:
    from mlfactory.service.db import LedgerSession
    from sqlalchemy import select

    t = LedgerSession
    query = select(t.started, t.ended, t.end_reason).where(t.key == key)
    with acc.store.engine.connect() as conn:
        started, ended, reason = conn.execute(query).one()
    return {"started": started, "ended": ended, "reason": reason}


async def test_a_container_the_hub_forgot_is_billed_then_stopped_and_removed(
    make_accountant, clock, hub_state, fake_hub, journal, containers
):
    acc = make_accountant(
        platform_with(accounting={"orphan_grace": "10m"}), fake_hub, engine=containers.view
    )
    await acc.start()
    hub_state.add_user("ann")
    key = "o" * 16
    volume = containers.volume()
    # no hub server, no journal record: only the engine and the labels know it
    cid = containers.run(containers.ledger(key, clock() - H), "-v", f"{volume}:/home/ann")

    await acc.tick()
    (row,) = acc.store.open_sessions()
    assert row["key"] == key and row["started"] == clock() - H  # billed from the label
    assert acc.store.spend("user", 0, clock() + 1, clock())["ann"][0] == pytest.approx(2.0)
    assert key in acc.orphans

    clock.advance(599)
    await acc.tick()
    assert containers.state(cid) == "running"  # still within its grace

    clock.advance(1)
    await acc.tick()
    assert containers.state(cid) is None  # stopped and removed
    assert containers.volume_exists(volume)  # the user's home stays
    assert acc.store.open_sessions() == []
    assert _end_reason(acc, key) == "orphaned"
    assert _session(acc, key)["ended"] == clock()
    spent = acc.store.spend("user", 0, clock() + 1, clock())["ann"][0]
    assert spent == pytest.approx(2.0 * (H + 600) / H)
    assert acc.orphans == {} and journal.orphan_marks() == {}


async def test_a_container_the_hub_lists_is_never_touched(
    make_accountant, clock, hub_state, fake_hub, journal, containers
):
    acc = make_accountant(
        platform_with(accounting={"orphan_grace": "10m"}), fake_hub, engine=containers.view
    )
    await acc.start()
    hub_state.add_user("ann")
    key = "l" * 16
    ledger = containers.ledger(key, clock())
    cid = containers.run(ledger)
    journal.write(Record(**ledger, container=cid, ready=True))
    hub_state.run_server("ann", "", ledger, iso(clock()))
    for _ in range(3):
        await acc.tick()
        clock.advance(H)
    assert containers.state(cid) == "running" and acc.orphans == {}
    (row,) = acc.store.open_sessions()
    assert row["key"] == key
    assert acc.store.spend("user", 0, clock() + 1, clock())["ann"][0] == pytest.approx(6.0)


async def test_a_starting_orphan_that_never_became_ready_costs_nothing(
    make_accountant, clock, hub_state, fake_hub, journal, containers
):
    """A hub that died mid-spawn: the gate opened the session, the container runs, the
    record says it never accepted connections. Not billed; removed after the grace."""
    acc = make_accountant(
        platform_with(accounting={"orphan_grace": "10m"}), fake_hub, engine=containers.view
    )
    await acc.start()
    hub_state.add_user("ann")
    key = "s" * 16
    ledger = containers.ledger(key, clock())
    from mlfactory.service.reconcile import Sighting

    acc.store.open_session(
        Sighting(key, "ann", "", clock(), 2.0, source="gate"), clock(), durable=True
    )
    cid = containers.run(ledger)
    journal.write(Record(**ledger, container=cid, ready=False))
    await acc.tick()
    assert key in acc.orphans
    clock.advance(600)
    await acc.tick()
    assert containers.state(cid) is None
    assert _end_reason(acc, key) == "orphaned"
    assert acc.store.spend("user", 0, clock() + 1, clock()).get("ann", (0.0, 0.0))[0] == 0.0
    await acc.tick()  # the stopped record is forgotten once the ledger closed it
    assert journal.records() == []


async def test_an_exited_container_ends_its_session_at_the_engines_finish_time(
    make_accountant, clock, hub_state, fake_hub, journal, containers
):
    clock.set(time.time())  # the engine's finish time is real time
    acc = make_accountant(platform_with(), fake_hub, engine=containers.view)
    await acc.start()
    hub_state.add_user("ann")
    key = "e" * 16
    t0 = clock()
    cid = containers.run(containers.ledger(key, t0))
    await acc.tick()
    assert [r["key"] for r in acc.store.open_sessions()] == [key]
    containers.engine.podman("stop", "-t", "0", cid)
    clock.advance(2 * H)
    await acc.tick()  # exited, not removed: closed when it finished, not at this tick
    assert acc.store.open_sessions() == []
    s = _session(acc, key)
    assert s["reason"] == "stopped"
    assert t0 <= s["ended"] < t0 + 120
    assert containers.state(cid) == "exited"  # an exited container is not the service's to remove


async def test_processes_and_containers_in_one_data_directory_are_both_billed(
    make_accountant, clock, hub_state, fake_hub, journal, containers
):
    acc = make_accountant(
        platform_with(accounting={"orphan_grace": "2h"}), fake_hub, engine=containers.view
    )
    await acc.start()
    proc = subprocess.Popen(["sleep", "600"], start_new_session=True)  # noqa: ASYNC220
    try:
        journal.write(
            Record(
                "q" * 16, "bob", "", clock(), 1.0, pid=proc.pid, pid_start=process_start(proc.pid)
            )
        )
        containers.run(containers.ledger("r" * 16, clock(), user="ann"))
        await acc.tick()
        clock.advance(H)
        await acc.tick()
        spend = acc.store.spend("user", 0, clock() + 1, clock())
        assert spend["bob"][0] == pytest.approx(1.0) and spend["ann"][0] == pytest.approx(2.0)
    finally:
        proc.kill()
        proc.wait()


async def test_the_engine_down_stops_nothing_closes_nothing_and_bills_the_hub(
    make_accountant, clock, hub_state, fake_hub, journal, tmp_path, caplog
):
    dead = EngineView(f"unix://{tmp_path / 'no-engine.sock'}", timeout=2)
    acc = make_accountant(platform_with(accounting={"orphan_grace": "10m"}), fake_hub, engine=dead)
    await acc.start()
    hub_state.add_user("ann")
    hub_state.add_user("bob")
    hub_state.run_server("ann", "", {"key": "h" * 16, "price_per_hour": 1.0}, iso(clock()))
    # bob's container server: the gate opened it, the hub does not list it (a hub that
    # forgot it), and only the engine could say whether it still runs
    from mlfactory.service.reconcile import Sighting

    key = "b" * 16
    acc.store.open_session(Sighting(key, "bob", "", clock(), 3.0, source="gate"), clock(), True)
    journal.write(Record(key, "bob", "", clock(), 3.0, container="feedface", ready=True))
    journal.mark_orphan(key, clock())  # found by an earlier tick, grace already running
    caplog.set_level(logging.INFO, logger="mlfactory.service")
    for _ in range(3):
        clock.advance(H)
        await acc.tick()  # never raises
    assert sorted(r["key"] for r in acc.store.open_sessions()) == ["b" * 16, "h" * 16]
    spend = acc.store.spend("user", 0, clock() + 1, clock())
    assert spend["ann"][0] == pytest.approx(3.0)
    assert journal.orphan_marks() == {key: pytest.approx(clock() - 3 * H)}  # kept, not acted on
    assert journal.read(key) is not None
    outage = [r for r in caplog.records if "cannot be reached" in r.getMessage()]
    assert len(outage) == 1 and outage[0].levelno == logging.WARNING


async def test_an_engine_outage_keeps_a_forgotten_container_billed_until_it_answers(
    make_accountant, clock, hub_state, fake_hub, journal, containers, caplog
):
    """A container seen running, then the engine stops answering: its session is neither
    closed nor its container stopped; once the engine answers, the orphan grace resumes."""
    acc = make_accountant(
        platform_with(accounting={"orphan_grace": "10m"}), fake_hub, engine=containers.view
    )
    await acc.start()
    hub_state.add_user("ann")
    key = "u" * 16
    cid = containers.run(containers.ledger(key, clock()))
    await acc.tick()
    assert key in acc.orphans
    acc.engine = EngineView("unix:///nonexistent/mlfactory/engine.sock", timeout=2)
    caplog.set_level(logging.INFO, logger="mlfactory.service")
    for _ in range(2):
        clock.advance(H)
        await acc.tick()
    assert [r["key"] for r in acc.store.open_sessions()] == [key]
    assert containers.state(cid) == "running" and key in journal.orphan_marks()
    acc.engine = containers.view
    await acc.tick()  # the engine answers again: the grace is long over, so it goes now
    assert containers.state(cid) is None and _end_reason(acc, key) == "orphaned"
    assert any("answers again" in r.getMessage() for r in caplog.records)
