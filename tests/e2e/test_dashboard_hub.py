"""The platform service behind a real hub: a browser logs in through the hub's OAuth and
sees the cost dashboard (the callback once answered 500), the OAuth code stays out of the
logs, and a role or a group membership taken away on the hub applies to the service within
seconds, as it does to the hub on the next request.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
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
    start_hub,
)
from .helpers import HubClient, poll

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


def put_dana_budget(lead: HubClient, amount: float) -> requests.Response:
    """A team lead sets dana's budget through the platform service."""
    body = json.dumps({"amount": amount, "enforcement": "alert"})
    return lead.put("/services/mlfactory/api/budgets/user/dana", data=body)


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
    admin = HubClient(hub)
    lena = HubClient(hub, "lena", token=admin.new_token("lena"))

    # lena leads data-science through her group "leads": she may set dana's budget
    r = put_dana_budget(lena, 5)
    assert r.status_code in (200, 201), r.text
    assert put_dana_budget(lena, 5).status_code == 200  # and the service has her answer cached now

    r = admin.delete("/hub/api/groups/leads/users", json={"users": ["lena"]})
    assert r.status_code == 200, r.text
    # The hub applies it on her next request...
    me = lena.hub_json("/user")
    assert LEAD_SCOPE not in me["scopes"]
    # ...and the service within a few seconds: polled with a deadline
    refused = poll(
        lambda: (r := put_dana_budget(lena, 5)).status_code == 403 and r.json(),
        5,
        "the PUT refused",
    )
    assert "custom:mlfactory:budgets:write" in refused["error"]
    # and stays refused
    assert put_dana_budget(lena, 5).status_code == 403


def test_member_leaving_the_team_is_out_of_its_leads_reach_within_seconds(hub):
    admin = HubClient(hub)
    leo = HubClient(hub, "leo", token=admin.new_token("leo"))

    # leo leads data-science, and dana is in it
    assert put_dana_budget(leo, 7).status_code in (200, 201)
    assert put_dana_budget(leo, 7).status_code == 200

    r = admin.delete("/hub/api/groups/data-science/users", json={"users": ["dana"]})
    assert r.status_code == 200, r.text
    # dana is no longer his to manage: the service treats her budget as out of his sight
    refused = poll(
        lambda: (r := put_dana_budget(leo, 7)).status_code == 404 and r.json(), 5, "the PUT refused"
    )
    assert refused["error"] == "No budget for user 'dana'."
