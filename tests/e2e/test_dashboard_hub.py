"""The platform service behind a real hub: a browser logs in through the hub's OAuth and
sees the cost dashboard (the callback once answered 500), the OAuth code stays out of the
logs, and a role or a group membership taken away on the hub applies to the service within
seconds, as it does to the hub on the next request.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from .conftest import (
    ADMIN_PASSWORD,
    RealHub,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    rest_token,
    start_hub,
)

pytestmark = [pytest.mark.hub]

SHIPPED_HUB_CONFIG = Path(__file__).resolve().parents[2] / "hub_config" / "jupyterhub_config.py"
LEAD_SCOPE = "custom:mlfactory:budgets:write!group=data-science"
# The shipped config, plus a role for the team leads' group, as an admin would add it at
# the end of their copy of the hub config.
LEADS_CONFIG = f"""
load_subconfig({str(SHIPPED_HUB_CONFIG)!r})
c = get_config()
c.JupyterHub.load_groups = {{**c.JupyterHub.load_groups, "leads": {{"users": ["lena", "leo"]}}}}
c.JupyterHub.load_roles = [
    *c.JupyterHub.load_roles,
    {{"name": "team-leads", "scopes": [{LEAD_SCOPE!r}], "groups": ["leads"]}},
]
"""


@pytest.fixture(scope="module")
def hub() -> Iterator[RealHub]:
    config = example_config()
    for group in config["groups"]:
        if group["name"] == "data-science":
            group["members"] = ["dana"]
    data, config_path = prepare_hub("dashboard", config, {"admin": ADMIN_PASSWORD})
    hub_config = data.with_suffix(".py")
    hub_config.write_text(LEADS_CONFIG)
    hub = start_hub(data, config=config_path, hub_config=hub_config)
    yield hub
    discard_hub(hub, config_path)
    hub_config.unlink(missing_ok=True)


def token_for(hub: RealHub, user: str, admin_token: str, **body) -> str:
    """A hub API token for ``user``, made by an admin (default scopes: all of the user's)."""
    r = requests.post(
        f"{hub.url}/hub/api/users/{user}/tokens",
        json={"note": "e2e test", **body},
        headers={"Authorization": f"token {admin_token}"},
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return r.json()["token"]


def poll(predicate: Callable[[], object], deadline_s: float, what: str) -> object:
    """Poll a real process until ``predicate`` is truthy; fail after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {deadline_s}s: {what}")
        time.sleep(0.1)  # polling real processes, not the clock under test


@pytest.mark.browser
def test_log_in_on_the_hub_and_open_the_dashboard(hub, browser):
    page = browser.new_context(viewport={"width": 1280, "height": 900}).new_page()
    log_in(page, hub, "admin", ADMIN_PASSWORD, next_url="/hub/home")
    callbacks: list[str] = []
    page.on(
        "response",
        lambda r: callbacks.append(f"{r.status} {r.url}") if "/oauth_callback" in r.url else None,
    )
    response = page.goto(f"{hub.url}/services/mlfactory/dashboard")
    assert response is not None
    assert response.status == 200, (callbacks, page.inner_text("body")[:500])
    assert page.locator("h1").inner_text() == "Costs"
    assert page.locator("#audience").inner_text().strip()
    assert page.url == f"{hub.url}/services/mlfactory/dashboard"
    # the browser went through the service's OAuth callback, which set its cookie
    ((status, url),) = [c.split(" ", 1) for c in callbacks]
    assert status == "302", callbacks
    code = parse_qs(urlparse(url).query)["code"][0]
    # the one-time code (and the state) never reach a log: the hub's nor the service's
    logged = "302 GET /services/mlfactory/oauth_callback?code=[secret]&state=[secret]"
    poll(lambda: logged in hub.log(), 10, "the service logged the callback, scrubbed")
    log = hub.log()
    assert code not in log
    assert "Code verifier required" not in log and "Traceback" not in log
    # a second visit rides on the service's cookie, with no new login
    callbacks.clear()
    assert page.goto(f"{hub.url}/services/mlfactory/dashboard").status == 200
    assert callbacks == []


def test_role_taken_away_is_applied_within_seconds(hub):
    admin_token = rest_token(hub)
    admin = {"Authorization": f"token {admin_token}"}
    lena = {"Authorization": f"token {token_for(hub, 'lena', admin_token)}"}
    budget = f"{hub.url}/services/mlfactory/api/budgets/user/dana"

    def put_budget() -> requests.Response:
        return requests.put(
            budget, data=json.dumps({"amount": 5, "enforcement": "alert"}), headers=lena, timeout=30
        )

    # lena leads data-science through her group "leads": she may set dana's budget
    r = put_budget()
    assert r.status_code in (200, 201), r.text
    assert put_budget().status_code == 200  # and the service has her answer cached now

    r = requests.delete(
        f"{hub.url}/hub/api/groups/leads/users", json={"users": ["lena"]}, headers=admin, timeout=30
    )
    assert r.status_code == 200, r.text
    # The hub applies it on her next request...
    me = requests.get(f"{hub.url}/hub/api/user", headers=lena, timeout=30).json()
    assert LEAD_SCOPE not in me["scopes"]
    # ...and the service within a few seconds: polled with a deadline
    refused = poll(
        lambda: (r := put_budget()).status_code == 403 and r.json(), 5, "the PUT refused"
    )
    assert "custom:mlfactory:budgets:write" in refused["error"]
    # and stays refused
    assert put_budget().status_code == 403


def test_member_leaving_the_team_is_out_of_its_leads_reach_within_seconds(hub):
    admin_token = rest_token(hub)
    admin = {"Authorization": f"token {admin_token}"}
    leo = {"Authorization": f"token {token_for(hub, 'leo', admin_token)}"}
    budget = f"{hub.url}/services/mlfactory/api/budgets/user/dana"

    def put_budget() -> requests.Response:
        return requests.put(
            budget, data=json.dumps({"amount": 7, "enforcement": "alert"}), headers=leo, timeout=30
        )

    # leo leads data-science, and dana is in it
    assert put_budget().status_code in (200, 201)
    assert put_budget().status_code == 200

    r = requests.delete(
        f"{hub.url}/hub/api/groups/data-science/users",
        json={"users": ["dana"]},
        headers=admin,
        timeout=30,
    )
    assert r.status_code == 200, r.text
    # dana is no longer his to manage: the service treats her budget as out of his sight
    refused = poll(
        lambda: (r := put_budget()).status_code == 404 and r.json(), 5, "the PUT refused"
    )
    assert refused["error"] == "No budget for user 'dana'."
