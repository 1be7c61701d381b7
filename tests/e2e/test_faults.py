"""Faults under a real hub, its real proxy, the real platform service and real servers.

- The proxy restarts while servers run: the routes of the servers and of the services come
  back, whether the hub restarts the proxy it manages or a proxy lost its routing table
  (as one restarted by a supervisor does), within JupyterHub's ``last_activity_interval``.
- PostgreSQL restarts while servers start and stop: the platform service recovers, every
  server has one ledger session, charged from its start, and none is charged twice.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from mlfactory.hub import listen_backlog

from ..pg import PostgresCluster, PostgresUnavailable
from ..service.pg_fixture import unavailable
from .conftest import RealHub, discard_hub, example_config, prepare_hub, start_hub
from .helpers import HubClient, poll

pytestmark = [pytest.mark.hub]

LAST_ACTIVITY_INTERVAL = 3  # s: how often the hub checks the proxy's routing table
PROXY_TOKEN = os.urandom(16).hex()  # the proxy's API token, known here to read its routes


def server_url(name: str) -> str:
    return f"/user/admin/{name}/" if name else "/user/admin/"


# --- the proxy ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def proxy_hub() -> Iterator[RealHub]:
    data, config_path = prepare_hub("proxy")
    before = os.environ.get("CONFIGPROXY_AUTH_TOKEN")
    os.environ["CONFIGPROXY_AUTH_TOKEN"] = PROXY_TOKEN  # the hub hands it to its proxy
    try:
        hub = start_hub(data, f"--JupyterHub.last_activity_interval={LAST_ACTIVITY_INTERVAL}")
    finally:
        if before is None:
            del os.environ["CONFIGPROXY_AUTH_TOKEN"]
        else:
            os.environ["CONFIGPROXY_AUTH_TOKEN"] = before
    yield hub
    discard_hub(hub, config_path)


def proxy_pid(hub: RealHub) -> int:
    """The proxy the hub runs, from its pid file under the data folder."""
    pid = int((hub.data / "hub" / "jupyterhub-proxy.pid").read_text().strip())
    assert "configurable-http-proxy" in " ".join(proxy_argv(pid))
    return pid


def proxy_argv(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def proxy_api_url(hub: RealHub) -> str:
    argv = proxy_argv(proxy_pid(hub))
    ip, port = (argv[argv.index(flag) + 1] for flag in ("--api-ip", "--api-port"))
    return f"http://{ip}:{port}"


def routes_answer(admin: HubClient, servers: list[str]) -> bool:
    """Every server's API and the platform service answer through the proxy."""
    return all(admin.answers(f"{server_url(s)}api/status") for s in servers) and admin.answers(
        "/services/mlfactory/api/me"
    )


@pytest.fixture(scope="module")
def running(proxy_hub) -> tuple[HubClient, list[str]]:
    admin = HubClient(proxy_hub)
    names = ["", "second"]
    for name in names:
        admin.spawn(name)
    for name in names:
        admin.wait_ready(name, 120)
    poll(lambda: routes_answer(admin, names), 30, "the servers and the service answer")
    return admin, names


def test_routes_a_proxy_lost_come_back_within_last_activity_interval(proxy_hub, running):
    """A proxy restarted by someone else (a supervisor, a pod restart) starts with an empty
    routing table; the hub puts every route back at its next route check."""
    admin, names = running
    api = proxy_api_url(proxy_hub)
    auth = {"Authorization": f"token {PROXY_TOKEN}"}
    routes = requests.get(f"{api}/api/routes", headers=auth, timeout=10).json()
    assert {"/", "/user/admin", "/user/admin/second", "/services/mlfactory"} <= set(routes)
    for path in routes:
        r = requests.delete(f"{api}/api/routes{path}", headers=auth, timeout=10)
        assert r.status_code == 204, (path, r.status_code)
    assert requests.get(f"{api}/api/routes", headers=auth, timeout=10).json() == {}
    assert not admin.answers("/services/mlfactory/api/me")

    # a few intervals: the check runs every interval, and this machine is busy
    poll(lambda: routes_answer(admin, names), 5 * LAST_ACTIVITY_INTERVAL, "routes restored")
    assert set(requests.get(f"{api}/api/routes", headers=auth, timeout=10).json()) == set(routes)


def test_a_killed_proxy_is_restarted_with_every_route(proxy_hub, running):
    """The proxy the hub manages dies: the hub starts a new one and adds every route."""
    admin, names = running
    old = proxy_pid(proxy_hub)
    os.kill(old, signal.SIGKILL)
    poll(lambda: not admin.answers("/services/mlfactory/api/me"), 10, "the proxy is down")
    poll(lambda: routes_answer(admin, names), 60, "a new proxy with every route")
    assert proxy_pid(proxy_hub) != old
    assert all(admin.ready(name) for name in names)  # the servers ran on


def hub_backlogs(hub: RealHub) -> set[int]:
    """The backlogs of the hub process's listening TCP sockets (``ss``: a listening socket's
    Send-Q is its backlog)."""
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return {int(line.split()[2]) for line in out.splitlines() if f"pid={hub.proc.pid}," in line}


def test_the_hubs_listen_queue_holds_a_class_pressing_start(proxy_hub):
    """tornado listens with a backlog of 128, which a thousand spawns at once overflow (the
    proxy then answers 503, ECONNRESET); the hub's config widens the hub's own queue once
    it listens, and says so at INFO through an ``mlfactory`` logger, which the hub's config
    routes to JupyterHub's handler (the line was lost before)."""
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    want = {min(listen_backlog.BACKLOG, somaxconn)}
    poll(
        lambda: hub_backlogs(proxy_hub) == want, 30, lambda: f"{hub_backlogs(proxy_hub)} != {want}"
    )
    assert "The hub's listen backlog is 2048 connections" in proxy_hub.log()


def test_the_hubs_collector_skips_what_it_started_with(proxy_hub):
    """Once the hub listens, what it loaded to start is frozen out of its full garbage
    collections (``hub_config/collector.py``), which walked it all in a storm."""
    pattern = re.compile(r"The hub's garbage collections skip the (\d+) objects it started with")
    poll(lambda: pattern.search(proxy_hub.log()), 30, lambda: "no such line in the hub's log")
    assert int(pattern.search(proxy_hub.log()).group(1)) > 100_000  # all of JupyterHub's


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.fixture
def postgres() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
    except PostgresUnavailable as e:
        cluster.stop()
        unavailable(str(e))
    yield cluster
    cluster.stop()


@pytest.fixture
def pg_hub(postgres) -> Iterator[tuple[RealHub, str]]:
    """A hub whose platform service keeps its ledger in PostgreSQL, charging every second;
    the gate lets spawns through while the service cannot answer (``allow-all``), so
    servers start during the outage and must be charged from their start."""
    url = postgres.create_database("mlfactory_faults")
    config = example_config()
    config["accounting"].update(database_url=url, interval=1, when_unreachable="allow-all")
    data, config_path = prepare_hub("pg", config)
    hub = start_hub(data, config=config_path)
    yield hub, url
    discard_hub(hub, config_path)


def ledger_rows(url: str) -> list[dict]:
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as c:
            rows = c.execute(text("SELECT * FROM ledger_sessions WHERE \"user\" = 'admin'"))
            return [dict(r._mapping) for r in rows]
    finally:
        engine.dispose()


def ledger_of(admin: HubClient, name: str) -> dict:
    """The session the spawner made for this server (its key and when it was asked for)."""
    state = admin.servers()[name]["state"]
    return state["mlfactory"]["ledger"]


def test_postgresql_restart_under_spawn_load(pg_hub, postgres):
    hub, url = pg_hub
    admin = HubClient(hub)
    ledgers: dict[str, dict] = {}
    ready_at: dict[str, float] = {}

    def start(names: list[str]) -> None:
        for name in names:
            admin.spawn(name)
        for name in names:
            admin.wait_ready(name, 120)
            ready_at[name] = time.time()
            ledgers[name] = ledger_of(admin, name)

    start(["", "early"])

    def rows() -> dict[str, dict]:
        return {r["key"]: r for r in ledger_rows(url)}

    first = {ledgers[n]["key"] for n in ledgers}
    poll(lambda: first <= set(rows()), 30, "the gate opened the sessions")

    # PostgreSQL goes away while servers start and stop, and while the service ticks
    postgres.pg_ctl("stop", "-m", "fast")
    down_at = time.time()
    failures = hub.log().count("Accounting tick failed")
    start(["late", "later"])  # the gate cannot answer: allowed by policy
    stop_asked = time.time()
    admin.stop("early", timeout=60)
    stopped_at = time.time()
    poll(lambda: hub.log().count("Accounting tick failed") > failures, 30, "a tick failed")
    assert "Budget gate: the platform service did not answer (HTTP 503)" in hub.log()
    # what a user's status bar reads says so, in words, and that it is worth a retry
    r = admin.get("/services/mlfactory/api/me", timeout=10)
    assert r.status_code == 503 and r.headers["Retry-After"] == "30", r.text
    assert r.json() == {
        "error": "The platform's database cannot be reached right now; try again in a minute, "
        "and tell an admin if it lasts."
    }

    postgres.pg_ctl("start")
    up_at = time.time()

    keys = {n: ledgers[n]["key"] for n in ledgers}

    def recovered() -> dict[str, dict] | None:
        now = rows()
        if set(keys.values()) - set(now) or now[keys["early"]]["ended"] is None:
            return None
        if any(now[keys[n]]["last_seen"] < up_at for n in ("", "late", "later")):
            return None  # not yet charged by a tick after the restart
        return now

    found = poll(recovered, 60, "the service charged again after the restart")
    assert admin.answers("/services/mlfactory/api/me")

    # one session per server, none twice: no other rows (e.g. a second key for a server)
    assert sorted(found) == sorted(keys.values()), found
    for name, key in keys.items():
        row = found[key]
        assert row["server_name"] == name
        # charged from the spawn on: not before it was asked for, not after it was ready
        assert ledgers[name]["started"] <= row["started"] <= ready_at[name], (name, row)
    # servers that ran on are still charged; the one stopped during the outage is charged
    # up to its stop, neither from the last tick before the outage nor up to the restart
    for name in ("", "late", "later"):
        assert found[keys[name]]["ended"] is None
    early = found[keys["early"]]
    assert stop_asked <= early["ended"] <= stopped_at, (early, stop_asked, stopped_at)
    assert down_at < early["ended"] < up_at
    # and no two sessions of one server overlap
    by_server: dict[str, list[dict]] = {}
    for row in found.values():
        by_server.setdefault(row["server_name"], []).append(row)
    for sessions in by_server.values():
        sessions.sort(key=lambda r: r["started"])
        for a, b in zip(sessions, sessions[1:], strict=False):
            assert a["ended"] is not None and a["ended"] <= b["started"]


def test_the_engine_reconnects_after_a_restart_and_bounds_connecting(postgres):
    """Pooled connections die with a restart: the next use gets a fresh one, no error; and
    connecting to PostgreSQL gives up after CONNECT_TIMEOUT_S rather than TCP's minutes."""
    from mlfactory.service.db import CONNECT_TIMEOUT_S, make_engine
    from sqlalchemy import text

    engine = make_engine(postgres.create_database("mlfactory_engine"))
    try:
        with engine.connect() as c:
            assert c.execute(text("SELECT 1")).scalar() == 1
            params = c.connection.dbapi_connection.info.get_parameters()
            assert params["connect_timeout"] == str(CONNECT_TIMEOUT_S)
        postgres.pg_ctl("restart", "-m", "fast")
        with engine.connect() as c:  # the pooled connection is stale: tested, replaced
            assert c.execute(text("SELECT 1")).scalar() == 1
    finally:
        engine.dispose()
