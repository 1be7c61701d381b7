"""A server that dies during start-up, or never answers: the user sees why, not a bare 500
or "Spawn failed: ", and nothing is charged."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
import requests
from mlfactory.spawner.journal import Journal, alive

from .conftest import (
    ADMIN_PASSWORD,
    discard_hub,
    hub_data_dir,
    prepare_hub,
    screenshot,
    start_hub,
    stop_hub,
)
from .helpers import HubClient

pytestmark = [pytest.mark.hub, pytest.mark.browser]


@pytest.fixture(scope="module")
def hub_whose_servers_fail():
    """A real hub whose single-user servers refuse a missing root folder and exit."""
    hub = start_hub(
        hub_data_dir("failing"),
        "--MLFactoryLocalSpawner.args=['--ServerApp.root_dir=/nonexistent/mlfactory-e2e']",
    )
    yield hub
    stop_hub(hub)
    shutil.rmtree(hub.data, ignore_errors=True)


def test_spawn_page_shows_the_cause(hub_whose_servers_fail, page):
    hub = hub_whose_servers_fail
    page.goto(f"{hub.url}/hub/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    # A fast failure comes back on the spawn request itself (the hub's error page); a slow
    # one on the progress page. Either way the user reads the cause.
    page.get_by_text("stopped during start-up").first.wait_for(timeout=60_000)
    text = page.inner_text("body")
    assert "Your server stopped during start-up (exit code 1)" in text
    assert "No such directory" in text and "/nonexistent/mlfactory-e2e" in text
    # what the user reads is the cause, not the hub's internals
    for internal in ("SpawnException", "/logs/", "InvalidStateError", "Traceback"):
        assert internal not in text
    assert "InvalidStateError" not in hub.log()
    screenshot(page, "spawn-failure")


# --- through the REST API: the progress stream, the pending page and the bill -----------


def progress_events(admin: HubClient, server: str = "") -> list[dict]:
    """The events of a spawn's progress stream, until it ends."""
    events = []
    with admin.get(f"{admin.server_path(server)}/progress", stream=True, timeout=120) as r:
        assert r.status_code == 200, r.text
        for line in r.iter_lines(decode_unicode=True):
            if line.startswith("data:"):
                events.append(json.loads(line.split(":", 1)[1]))
    return events


def charged(admin: HubClient) -> list[dict]:
    """The platform service's bill per server, rows that cost anything."""
    return [row for row in admin.service_json("/usage?by=server")["rows"] if row["cost"] > 0]


def test_a_server_that_exits_says_why_and_costs_nothing(hub_whose_servers_fail):
    admin = HubClient(hub_whose_servers_fail)
    r = admin.start("exits")
    # a fast failure: the spawn request itself answers with the cause
    assert r.status_code == 500, r.text
    assert r.json()["message"].startswith("Your server stopped during start-up (exit code 1)")
    (failed,) = progress_events(admin, "exits")
    assert failed["failed"] is True
    assert failed["message"].startswith(
        "Spawn failed: Your server stopped during start-up (exit code 1)"
    )
    assert "/nonexistent/mlfactory-e2e" in failed["message"]
    assert charged(admin) == []


NEVER_LISTENS = (
    "import time; print('loading the model weights', flush=True); "
    "print('still loading', flush=True); time.sleep(600)"
)


@pytest.fixture(scope="module")
def hub_whose_servers_never_listen():
    """A real hub whose servers print two lines and then never accept connections; a
    spawn request answers at once (as the spawn page does) and a start gives up at 10 s."""
    cmd = [sys.executable, "-c", NEVER_LISTENS]
    data, config_path = prepare_hub("never-listens")
    hub = start_hub(
        data,
        f"--MLFactoryLocalSpawner.cmd={cmd!r}",
        "--Spawner.start_timeout=10",
        "--JupyterHub.tornado_settings={'slow_spawn_timeout': 0}",
        config=config_path,
    )
    yield hub
    discard_hub(hub, config_path)


def test_a_start_timeout_names_the_limit_and_the_last_log_lines(hub_whose_servers_never_listen):
    hub = hub_whose_servers_never_listen
    admin = HubClient(hub)
    # the hub's pages take a login cookie, not a token (logged in first: the spawn form's
    # page would start afresh and forget the failure)
    browser = requests.Session()
    browser.get(f"{hub.url}/hub/login", timeout=60)
    login = {"username": "admin", "password": ADMIN_PASSWORD, "_xsrf": browser.cookies["_xsrf"]}
    assert browser.post(f"{hub.url}/hub/login", data=login, timeout=60).status_code == 200

    r = admin.start()
    assert r.status_code == 202, r.text
    events = progress_events(admin)
    failed = events[-1]
    assert failed["failed"] is True
    assert failed["message"] == (
        "Spawn failed: Your server did not accept connections within 10 s, so it was stopped. "
        "The last lines of its log:\nloading the model weights\nstill loading"
    )
    assert failed["html_message"].endswith("<pre>loading the model weights\nstill loading</pre>")
    # the spawn-pending page says the same, not a bare "has failed"
    r = browser.get(f"{hub.url}/hub/spawn-pending/admin", timeout=60)
    assert r.status_code == 500, r.text
    assert "did not accept connections within 10 s" in r.text and "still loading" in r.text
    # the process is gone and nothing was charged
    records = Journal(hub.data / "runtime" / "servers").records()
    assert records and not any(alive(rec) and not zombie(rec.pid) for rec in records)
    assert charged(admin) == []


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except (OSError, IndexError):
        return False
