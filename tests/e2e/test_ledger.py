"""The ledger's lifecycle between the spawner and the platform service, on a real hub with
its real proxy, platform service and servers: a stop is reflected at once, a server that
never became ready costs nothing, and an orphan (a server left running by a hub that died
mid-spawn) is stopped after a grace period and shown to admins until then.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import sys
import time
from pathlib import Path

import pytest
import requests

from .conftest import (
    ADMIN_PASSWORD,
    RealHub,
    discard_hub,
    example_config,
    prepare_hub,
    start_hub,
)

pytestmark = [pytest.mark.hub]


class HubClient:
    """The admin's side of a real hub: a logged-in session and an API token."""

    def __init__(self, hub: RealHub, user: str = "admin", password: str = ADMIN_PASSWORD):
        self.hub = hub
        self.session = requests.Session()
        self.session.get(f"{hub.url}/hub/login", timeout=30)
        r = self.session.post(
            f"{hub.url}/hub/login",
            data={
                "username": user,
                "password": password,
                "_xsrf": self.session.cookies.get("_xsrf", ""),
            },
            timeout=30,
        )
        r.raise_for_status()
        r = self.session.post(
            f"{hub.url}/hub/api/users/{user}/tokens",
            json={"note": "e2e ledger test", "expires_in": 1800},
            headers={"X-XSRFToken": self.session.cookies.get("_xsrf", "")},
            timeout=30,
        )
        r.raise_for_status()
        self.user = user
        self.headers = {"Authorization": f"token {r.json()['token']}"}

    def get(self, path: str) -> requests.Response:
        return requests.get(f"{self.hub.url}{path}", headers=self.headers, timeout=30)

    def post(self, path: str, body: dict) -> requests.Response:
        return requests.post(f"{self.hub.url}{path}", json=body, headers=self.headers, timeout=60)

    def delete(self, path: str) -> requests.Response:
        return requests.delete(f"{self.hub.url}{path}", headers=self.headers, timeout=60)

    def servers(self) -> dict:
        return self.get(f"/hub/api/users/{self.user}").json()["servers"]

    def service(self, path: str) -> dict:
        r = self.get(f"/services/mlfactory/api{path}")
        assert r.status_code == 200, r.text
        return r.json()


def wait_for(predicate, timeout: float, what: str):
    """Poll a real process until ``predicate()`` is truthy (a deadline, not a clock under
    test)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


def ledger_rows(hub: RealHub) -> list[dict]:
    with sqlite3.connect(hub.data / "hub" / "platform.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM ledger_sessions")]


def start_named(client: HubClient, name: str, timeout: float = 120) -> None:
    r = client.post(f"/hub/api/users/{client.user}/servers/{name}", {"profile": "cpu-small"})
    assert r.status_code in (201, 202), r.text
    wait_for(
        lambda: client.servers().get(name, {}).get("ready"), timeout, f"server {name} to start"
    )


# --- a stop is reflected at once -------------------------------------------------------


@pytest.fixture(scope="module")
def slow_ledger_hub():
    """Accounting once an hour: only the spawner's own notices can move the ledger."""
    config = example_config()
    config["accounting"]["interval"] = "1h"
    data, config_path = prepare_hub("ledger-stop", config)
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def test_a_stopped_server_stops_counting_at_once(slow_ledger_hub):
    hub = slow_ledger_hub
    admin = HubClient(hub)
    start_named(admin, "quick")
    mine = [s["server_name"] for s in admin.service("/me")["servers"]]
    assert mine == ["quick"]
    assert [s["server_name"] for s in admin.service("/servers")["servers"]] == ["quick"]

    r = admin.delete("/hub/api/users/admin/servers/quick")
    assert r.status_code == 204, r.text
    # Well under the accounting interval (an hour): only the spawner's stop notice explains
    # an empty list here.
    wait_for(
        lambda: (
            admin.service("/me")["servers"] == [] and admin.service("/servers")["servers"] == []
        ),
        2,
        "the stopped server to leave /api/me and /api/servers",
    )
    (row,) = [r for r in ledger_rows(hub) if r["server_name"] == "quick"]
    assert row["ended"] is not None and row["end_reason"] == "stopped"


# --- servers that never become ready -----------------------------------------------------

# The server command of the hub below: a server whose name starts with "frozen" stops
# itself (SIGSTOP) before it listens, as a hung start-up does; the others start normally.
FROZEN_CMD = """\
import os, signal, sys
if os.environ.get("JUPYTERHUB_SERVER_NAME", "").startswith("frozen"):
    os.kill(os.getpid(), signal.SIGSTOP)
os.execv(sys.executable, [sys.executable, "-m", "mlfactory.spawner.singleuser", *sys.argv[1:]])
"""
START_TIMEOUT = 12  # seconds: the frozen server's spawn gives up after this
ORPHAN_GRACE = 15  # seconds: the test must see the orphan listed before its stop


def hub_args(data: Path) -> list[str]:
    script = data / "frozen-server.py"
    script.write_text(FROZEN_CMD)
    script.chmod(0o644)  # the servers' OS accounts run it
    return [
        f"--MLFactoryLocalSpawner.cmd=['{sys.executable}', '{script}']",
        f"--MLFactoryLocalSpawner.start_timeout={START_TIMEOUT}",
        # a frozen process ignores SIGINT and SIGTERM until killed: do not wait long on them
        "--MLFactoryLocalSpawner.interrupt_timeout=1",
        "--MLFactoryLocalSpawner.term_timeout=1",
    ]


@pytest.fixture(scope="module")
def frozen_hub():
    """Accounting every second, orphans stopped ``ORPHAN_GRACE`` seconds after they are
    found, servers named frozen-* that never listen."""
    config = example_config()
    config["accounting"]["interval"] = "1s"
    config["accounting"]["orphan_grace"] = f"{ORPHAN_GRACE}s"
    data, config_path = prepare_hub("ledger-frozen", config)
    state = {"hub": start_hub(data, *hub_args(data), config=config_path)}
    yield state
    discard_hub(state["hub"], config_path)


def journal_records(hub: RealHub) -> list[dict]:
    root = hub.data / "runtime" / "servers"
    return [json.loads(p.read_text()) for p in sorted(root.glob("*.json"))]


def usage_of(client: HubClient, server: str) -> list[dict]:
    rows = client.service("/usage?by=server")["rows"]
    return [r for r in rows if r["key"] == f"{client.user}/{server}"]


def process_state(pid: int) -> str:
    """The kernel's state letter for ``pid`` ('' when it is gone; 'Z' for a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2 :].split()[0]


def test_a_server_that_never_became_ready_costs_nothing(frozen_hub):
    hub = frozen_hub["hub"]
    admin = HubClient(hub)
    r = admin.post("/hub/api/users/admin/servers/frozen-start", {"profile": "cpu-small"})
    assert r.status_code in (201, 202), r.text
    (record,) = wait_for(
        lambda: [r for r in journal_records(hub) if r["server_name"] == "frozen-start"],
        60,
        "the frozen server's process",
    )
    wait_for(lambda: process_state(record["pid"]) == "T", 30, "the server to freeze")
    # the gate charged it from the spawn on: it counts as running while it starts
    assert [s["server_name"] for s in admin.service("/servers")["servers"]] == ["frozen-start"]

    # JupyterHub gives up at start_timeout: pending clears, the process is stopped
    wait_for(
        lambda: not admin.servers().get("frozen-start", {}).get("pending"),
        START_TIMEOUT + 60,
        "the spawn to time out",
    )
    wait_for(lambda: process_state(record["pid"]) in ("", "Z"), 30, "the process to be stopped")
    assert admin.service("/servers")["servers"] == []
    (row,) = [r for r in ledger_rows(hub) if r["server_name"] == "frozen-start"]
    assert row["ended"] == row["started"], row  # closed at its start: nothing charged
    assert row["end_reason"] == "failed to start"
    assert all(u["cost"] == 0 and u["hours"] == 0 for u in usage_of(admin, "frozen-start"))


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        if int(text[text.rindex(")") + 2 :].split()[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def test_an_orphan_is_shown_then_stopped_after_the_grace(frozen_hub):
    """The hub dies (SIGKILL) while it starts a server: the server's process is left running
    and the restarted hub does not know it. The service shows it to admins as orphaned, and
    stops it after the grace period, ending its session as "orphaned"."""
    hub = frozen_hub["hub"]
    admin = HubClient(hub)
    r = admin.post("/hub/api/users/admin/servers/frozen-orphan", {"profile": "cpu-small"})
    assert r.status_code in (201, 202), r.text
    (record,) = wait_for(
        lambda: [r for r in journal_records(hub) if r["server_name"] == "frozen-orphan"],
        60,
        "the frozen server's process",
    )
    wait_for(lambda: process_state(record["pid"]) == "T", 30, "the server to freeze")

    # The hub dies mid-spawn. Its proxy and services would outlive it (and hold their
    # ports): stop them as their own crash would; the server's process stays.
    helpers = [p for p in _children(hub.proc.pid) if p != record["pid"]]
    os.kill(hub.proc.pid, signal.SIGKILL)
    hub.proc.wait()
    for pid in helpers:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    hub = frozen_hub["hub"] = start_hub(
        hub.data, *hub_args(hub.data), config=hub.data.with_suffix(".yaml")
    )
    admin.hub = hub  # the admin's token is in the hub's database: no new login to wait for
    assert "frozen-orphan" not in admin.servers() or not admin.servers()["frozen-orphan"].get(
        "pending"
    )

    # Admins see it running, flagged as an orphan that will be stopped
    def orphan() -> list[dict]:
        servers = admin.service("/servers")["servers"]
        return [s for s in servers if s["server_name"] == "frozen-orphan" and s["orphaned"]]

    (shown,) = wait_for(orphan, 30, "the orphan to be shown to admins")
    assert shown["stops_at"]
    assert process_state(record["pid"]) == "T"  # not stopped before its grace

    wait_for(
        lambda: process_state(record["pid"]) in ("", "Z"), ORPHAN_GRACE + 30, "the orphan's stop"
    )
    wait_for(lambda: admin.service("/servers")["servers"] == [], 10, "its session to close")
    (row,) = [r for r in ledger_rows(hub) if r["server_name"] == "frozen-orphan"]
    assert row["end_reason"] == "orphaned"
    assert row["ended"] == row["started"]  # it never became ready: nothing charged
    assert all(u["cost"] == 0 and u["hours"] == 0 for u in usage_of(admin, "frozen-orphan"))
