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
from pathlib import Path

import pytest

from .conftest import RealHub, discard_hub, example_config, prepare_hub, start_hub
from .helpers import HubClient, poll

pytestmark = [pytest.mark.hub]


def ledger_rows(hub: RealHub) -> list[dict]:
    with sqlite3.connect(hub.data / "hub" / "platform.sqlite") as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT * FROM ledger_sessions")]


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
    admin.spawn("quick")
    admin.wait_ready("quick")
    mine = [s["server_name"] for s in admin.service_json("/me")["servers"]]
    assert mine == ["quick"]
    assert [s["server_name"] for s in admin.service_json("/servers")["servers"]] == ["quick"]

    r = admin.delete("/hub/api/users/admin/servers/quick")
    assert r.status_code == 204, r.text
    # Well under the accounting interval (an hour): only the spawner's stop notice explains
    # an empty list here.
    poll(
        lambda: (
            admin.service_json("/me")["servers"] == []
            and admin.service_json("/servers")["servers"] == []
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
    rows = client.service_json("/usage?by=server")["rows"]
    return [r for r in rows if r["key"] == f"{client.user}/{server}"]


def process_state(pid: int) -> str:
    """The kernel's state letter for ``pid`` ('' when it is gone; 'Z' for a zombie)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat[stat.rindex(")") + 2 :].split()[0]


def start_frozen(admin: HubClient, name: str) -> dict:
    """Start the frozen server ``name`` and wait until its process has stopped itself;
    the spawner's journal record of it."""
    admin.spawn(name)
    (record,) = poll(
        lambda: [r for r in journal_records(admin.hub) if r["server_name"] == name],
        60,
        "the frozen server's process",
    )
    poll(lambda: process_state(record["pid"]) == "T", 30, "the server to freeze")
    return record


def test_a_server_that_never_became_ready_costs_nothing(frozen_hub):
    hub = frozen_hub["hub"]
    admin = HubClient(hub)
    record = start_frozen(admin, "frozen-start")
    # the gate charged it from the spawn on: it counts as running while it starts
    assert [s["server_name"] for s in admin.service_json("/servers")["servers"]] == ["frozen-start"]

    # JupyterHub gives up at start_timeout: pending clears, the process is stopped
    poll(
        lambda: not admin.servers().get("frozen-start", {}).get("pending"),
        START_TIMEOUT + 60,
        "the spawn to time out",
    )
    poll(lambda: process_state(record["pid"]) in ("", "Z"), 30, "the process to be stopped")
    assert admin.service_json("/servers")["servers"] == []
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
    record = start_frozen(admin, "frozen-orphan")

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
        servers = admin.service_json("/servers")["servers"]
        return [s for s in servers if s["server_name"] == "frozen-orphan" and s["orphaned"]]

    (shown,) = poll(orphan, 30, "the orphan to be shown to admins")
    assert shown["stops_at"]
    assert process_state(record["pid"]) == "T"  # not stopped before its grace

    poll(lambda: process_state(record["pid"]) in ("", "Z"), ORPHAN_GRACE + 30, "the orphan's stop")
    poll(lambda: admin.service_json("/servers")["servers"] == [], 10, "its session to close")
    (row,) = [r for r in ledger_rows(hub) if r["server_name"] == "frozen-orphan"]
    assert row["end_reason"] == "orphaned"
    assert row["ended"] == row["started"]  # it never became ready: nothing charged
    assert all(u["cost"] == 0 and u["hours"] == 0 for u in usage_of(admin, "frozen-orphan"))
