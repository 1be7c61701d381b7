"""A server that dies during start-up: the user sees why, not a bare 500."""

from __future__ import annotations

import shutil

import pytest

from .conftest import ADMIN_PASSWORD, hub_data_dir, screenshot, start_hub, stop_hub

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
