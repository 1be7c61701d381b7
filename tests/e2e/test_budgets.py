"""Budgets on a real hub with its real platform service: a spawn over a hard budget is
refused on the spawn page with the budget, the spend and the reset date; raising the
budget through the service's API lets it start; the ledger charges it once, across a hub
restart with the server left running; and the service, killed, comes back and keeps count.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3

import pytest

from .conftest import (
    ADMIN_PASSWORD,
    api_token,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
    stop_hub,
)
from .helpers import poll

pytestmark = [pytest.mark.hub, pytest.mark.browser]

DANA_PASSWORD = "dana-data-science-1"
KEEP_SERVERS = "--JupyterHub.cleanup_servers=False"


@pytest.fixture(scope="module")
def budget_hub():
    """dana in data-science, whose team budget (0.01/month, block) is below an hour of the
    cheapest profile; accounting every 2 s so the test sees the ledger move."""
    config = example_config()
    for group in config["groups"]:
        if group["name"] == "data-science":
            group["members"] = ["dana"]
            group["budget"] = {"amount": 0.01, "period": "monthly", "enforcement": "block"}
    config["accounting"]["interval"] = "2s"
    data, config_path = prepare_hub("budgets", config, {"dana": DANA_PASSWORD})
    hub = start_hub(data, KEEP_SERVERS, config=config_path)
    state = {"hub": hub, "config": config_path}
    yield state
    stop_hub(state["hub"])  # before the servers, so it does not restart them
    # the servers were left running on purpose: stop what is left of them
    for record in (data / "runtime" / "servers").glob("*.json"):
        pid = json.loads(record.read_text()).get("pid")
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
            except OSError:
                pass
    for account in ("mlf-dana",):
        os.system(f"userdel {account} >/dev/null 2>&1")  # noqa: S605 - fixed name
    discard_hub(state["hub"], config_path)


def _ledger(hub) -> list[tuple]:
    with sqlite3.connect(hub.data / "hub" / "platform.sqlite") as db:
        return db.execute(
            "SELECT key, user, server_name, price_per_hour, ended FROM ledger_sessions"
        ).fetchall()


def test_refused_then_allowed_then_charged_once(budget_hub, browser):
    hub = budget_hub["hub"]
    dana = browser.new_context().new_page()
    log_in(dana, hub, "dana", DANA_PASSWORD)
    dana.goto(f"{hub.url}/hub/spawn")
    budget = dana.locator("#mlfactory-budget").inner_text()
    assert budget.startswith("Team data-science monthly budget: 0.00 of 0.01 USD spent"), budget
    dana.locator('[data-testid="profile-card-cpu-small"]').click()
    dana.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    dana.get_by_text("budget of group 'data-science'").first.wait_for(timeout=60_000)
    text = dana.inner_text("body")
    assert "0.00 USD spent of 0.01 USD" in text
    assert "It resets at" in text and "Traceback" not in text
    screenshot(dana, "budget-refused-spawn")
    assert _ledger(hub) == []  # nothing started, nothing charged

    admin = browser.new_context().new_page()
    log_in(admin, hub, "admin", ADMIN_PASSWORD, next_url="/hub/home")
    headers = {"Authorization": f"token {api_token(admin, hub, 'admin')}"}
    api = f"{hub.url}/services/mlfactory/api"
    r = admin.request.put(
        f"{api}/budgets/group/data-science",
        data=json.dumps({"amount": 50, "enforcement": "block"}),
        headers=headers,
    )
    assert r.status == 201, r.text()
    assert r.json()["amount"] == 50 and r.json()["source"] == "api"

    dana.goto(f"{hub.url}/hub/spawn")
    dana.locator('[data-testid="profile-card-cpu-small"]').click()
    dana.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    dana.wait_for_url(re.compile(r".*/user/dana/lab.*"), timeout=90_000)
    (row,) = poll(lambda: [r for r in _ledger(hub) if r[1] == "dana"], 30, "dana's session")
    assert row[2] == "" and row[3] == 0.05 and row[4] is None  # cpu-small, running

    servers = admin.request.get(f"{api}/servers", headers=headers).json()["servers"]
    assert [(s["user"], s["price_per_hour"]) for s in servers] == [("dana", 0.05)]

    # JupyterLab's status bar shows dana's spend against her budget
    status = dana.locator('[data-testid="mlfactory-budget-status"]')
    status.wait_for(timeout=60_000)
    assert "USD" in status.inner_text()

    # A tiny alert-only budget for dana: its thresholds fire, and she reads the notice on
    # the hub's home page (and, at 100%, JupyterLab raises an error notification)
    r = admin.request.put(
        f"{api}/budgets/user/dana",
        data=json.dumps({"amount": 0.00001, "enforcement": "alert"}),
        headers=headers,
    )
    assert r.status == 201, r.text()
    dana.goto(f"{hub.url}/hub/home")
    notice = dana.locator('[data-testid="mlfactory-budget-notice"]').first
    poll(lambda: (dana.reload(), notice.is_visible())[1], 60, "the budget notice")
    assert "Budget alert: user 'dana'" in notice.inner_text()
    screenshot(dana, "budget-notice-home")

    # The hub restarts with the server left running: still one open row, same key.
    stop_hub(hub)
    hub = budget_hub["hub"] = start_hub(hub.data, KEEP_SERVERS, config=budget_hub["config"])
    health = f"{hub.url}/services/mlfactory/api/health"

    def ticks() -> list[str]:
        r = admin.request.get(health)
        return [r.json()["last_tick"]] if r.status == 200 and r.json()["last_tick"] else []

    # two reconcile ticks of the restarted service have run (it ticks every 2 s)
    first = poll(ticks, 30, "a tick of the restarted service")[0]
    poll(lambda: [t for t in ticks() if t > first], 30, "a second tick")
    rows = [r for r in _ledger(hub) if r[1] == "dana"]
    assert len(rows) == 1 and rows[0][0] == row[0] and rows[0][4] is None

    # The service is killed: the hub restarts it, and it still counts one session. (This
    # hub's own service: other hubs may run on this machine.)
    def service_pids() -> list[str]:
        cmd = f"pgrep -P {hub.proc.pid} -f 'mlfactory.service'"
        return os.popen(cmd).read().split()  # noqa: S605 - fixed command

    pid = int(poll(lambda: service_pids()[:1], 30, "the platform service's process")[0])
    os.kill(pid, signal.SIGKILL)
    poll(lambda: [p for p in service_pids() if p != str(pid)], 30, "the service restarted")

    # dana stops the server: the ledger closes the row.
    dana.goto(f"{hub.url}/hub/home")  # still logged in: cookies are per host, not per port
    r = dana.request.delete(
        f"{hub.url}/hub/api/users/dana/server",
        headers={"Authorization": f"token {api_token(dana, hub, 'dana')}"},
    )
    assert r.status in (202, 204), r.text()
    ended = poll(
        lambda: [r for r in _ledger(hub) if r[1] == "dana" and r[4] is not None],
        30,
        "dana's session closed",
    )
    assert len(ended) == 1 and len(_ledger(hub)) == 1
