"""The hub's home page on a real hub with its real platform service, in Chromium: a data
scientist with a running server sees its profile, uptime and cost so far, their budgets and a
budget notice; reloading the page mints no API token (issue 21); another user's servers,
budgets and notices never appear on it."""

from __future__ import annotations

import json
import re

import pytest

from .conftest import (
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
)
from .helpers import HubClient, poll

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PASSWORDS = {"dana": "dana-data-science-1", "eve": "eve-ml-engineering-1"}
MONEY = r"\d[\d,]*\.\d\d USD"


@pytest.fixture(scope="module")
def hub():
    """dana in data-science, eve in ml-engineering; accounting every 2 s so thresholds fire
    while the test waits."""
    config = example_config()
    for group in config["groups"]:
        group["members"] = {"data-science": ["dana"], "ml-engineering": ["eve"]}.get(
            group["name"], group.get("members", [])
        )
    config["accounting"]["interval"] = "2s"
    data, config_path = prepare_hub("home", config, PASSWORDS)
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def tokens(admin: HubClient, user: str) -> list[str]:
    return sorted(t["id"] for t in admin.hub_json(f"/users/{user}/tokens")["api_tokens"])


def test_home_page_shows_my_servers_budgets_and_notices_and_mints_nothing(hub, browser):
    admin = HubClient(hub)
    for user in PASSWORDS:
        r = admin.post(f"/hub/api/users/{user}")
        assert r.status_code in (201, 409), r.text
    admin.spawn(user="dana", profile="cpu-small")
    admin.spawn("evesecret", profile="cpu-medium", user="eve")
    admin.wait_ready(user="dana", timeout=180)
    admin.wait_ready("evesecret", user="eve", timeout=180)
    # tiny alert-only budgets: every threshold fires at the next accounting pass
    for user in PASSWORDS:
        r = admin.put(
            f"/services/mlfactory/api/budgets/user/{user}",
            data=json.dumps({"amount": 0.00001, "enforcement": "alert"}),
        )
        assert r.status_code == 201, r.text
    before = tokens(admin, "dana")

    page = browser.new_context().new_page()
    log_in(page, hub, "dana", PASSWORDS["dana"], next_url="/hub/home")
    notice = page.locator('[data-testid="mlfactory-budget-notice"]').first

    def noticed() -> bool:
        page.goto(f"{hub.url}/hub/home")
        return notice.is_visible()

    poll(noticed, 60, "dana's budget notice on the home page")
    assert "Budget alert: user 'dana'" in notice.inner_text()
    assert re.search(rf"Spent {MONEY[:-4]} of {MONEY}", notice.inner_text())

    row = page.locator('[data-testid="mlfactory-server"]')
    assert row.count() == 1
    assert row.get_attribute("data-server-name") == ""
    assert row.locator('[data-testid="mlfactory-server-profile"]').inner_text() == "cpu-small"
    uptime = row.locator('[data-testid="mlfactory-server-uptime"]').inner_text()
    assert re.fullmatch(r"under a minute|\d+ min|\d+ h \d+ min", uptime), uptime
    cost = row.locator('[data-testid="mlfactory-server-cost"]').inner_text()
    assert re.fullmatch(MONEY, cost), cost
    assert "0.05 USD/hour" in row.inner_text()

    budgets = page.locator('[data-testid="mlfactory-budget"]')
    labels = [budgets.nth(i).locator("td").first.inner_text() for i in range(budgets.count())]
    assert "Your monthly budget" in labels and "Team data-science monthly budget" in labels
    assert "Team ml-engineering monthly budget" not in labels
    screenshot(page, "home-page-summary")

    # more visits: still no new token for dana
    for _ in range(3):
        page.reload()
        page.locator('[data-testid="mlfactory-summary"]').wait_for()
    assert tokens(admin, "dana") == before

    # eve's server, budget and notices are hers alone
    text = page.inner_text("body")
    assert "evesecret" not in text and "cpu-medium" not in text and "'eve'" not in text

    # and eve sees hers, not dana's
    eve = browser.new_context().new_page()
    log_in(eve, hub, "eve", PASSWORDS["eve"], next_url="/hub/home")
    eve_row = eve.locator('[data-testid="mlfactory-server"]')
    eve_row.first.wait_for()
    assert eve_row.count() == 1 and eve_row.get_attribute("data-server-name") == "evesecret"
    assert "dana" not in eve.inner_text("body")
