"""The JupyterLab session on a real hub, its platform service and Chromium: the status
bar's cost popover links to the dashboard; the mlfactory panel shows uptime and cost and
stops the server (saving first); a stop from the hub's REST API (what the Control Panel
does) and a ``stop`` budget's stop are explained in JupyterLab, with what was not saved.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import (
    api_token,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
)
from .helpers import HubClient, poll

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PASSWORDS = {
    "dana": "dana-data-science-1",
    "eli": "eli-data-science-22",
    "fay": "fay-data-science-333",
    "gus": "gus-data-science-4444",
    "hal": "hal-data-science-55555",
}
NOTICE = '[data-testid="mlfactory-stop-notice"]'
# JupyterLab notices a stop at its next poll of the server (every 10 s), then the notice
# waits up to 10 s for the platform's record of it
NOTICE_TIMEOUT_MS = 90_000


@pytest.fixture(scope="module")
def hub() -> Iterator:
    config = example_config()
    config["accounting"]["interval"] = "2s"
    # These tests are about JupyterLab's own save before a stop and what it then says.
    # Real-time collaboration (on by default) makes the room save every edit within a
    # second, which would make "unsaved" depend on timing: its notice is covered by
    # test_a_budget_stop_under_collaboration_keeps_the_edit, on its own hub.
    config.setdefault("sharing", {})["workspaces"] = {"realtime": False}
    data, config_path = prepare_hub("lab-session", config, PASSWORDS)
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def _open_lab(browser, hub, user: str, text: str):
    """``user``'s server running, notes.txt with ``text`` in it open in JupyterLab, and
    the page holding a stop ticket; returns (page, the user's REST client)."""
    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    log_in(page, hub, user, PASSWORDS[user], next_url="/hub/home")
    client = HubClient(hub, user, token=api_token(page, hub, user))
    client.spawn(profile="cpu-small")
    client.wait_ready()
    r = client.put(
        f"/user/{user}/api/contents/notes.txt",
        json={"type": "file", "format": "text", "content": text},
    )
    assert r.status_code in (200, 201), r.text

    def ticket(response) -> bool:
        return "/mlfactory/api/stop-ticket" in response.url and response.status == 200

    console: list[str] = []
    page.on("console", lambda m: console.append(f"{m.type}: {m.text}"))
    try:
        with page.expect_response(ticket, timeout=120_000):
            page.goto(f"{hub.url}/user/{user}/lab/tree/notes.txt")
    except Exception:
        screenshot(page, f"lab-session-{user}-no-ticket")
        raise AssertionError("no stop ticket; console:\n" + "\n".join(console[-30:])) from None
    page.locator(".jp-FileEditor .cm-content").first.wait_for(timeout=60_000)
    return page, client


def _type(page, text: str) -> None:
    """Unsaved changes in the open editor (the tab shows them as dirty)."""
    page.locator(".jp-FileEditor .cm-content").first.click()
    page.keyboard.press("Control+End")
    page.keyboard.type(text)
    page.locator(".jp-mod-dirty").first.wait_for(timeout=10_000)


def _notice(page) -> str:
    notice = page.locator(NOTICE)
    notice.wait_for(timeout=NOTICE_TIMEOUT_MS)
    return notice.inner_text()


def test_cost_popover_panel_and_stop(hub, browser):
    page, client = _open_lab(browser, hub, "dana", "first line\n")

    # the status bar's cost item opens a popover with this server's cost and the dashboard
    status = page.locator('[data-testid="mlfactory-budget-status"]')
    status.wait_for(timeout=60_000)
    status.click()
    popover = page.locator('[data-testid="mlfactory-cost-popover"]')
    popover.wait_for(timeout=10_000)
    assert "This server:" in popover.inner_text() and "/hour" in popover.inner_text()
    assert "Your budget" in popover.inner_text()
    link = page.locator('[data-testid="mlfactory-cost-dashboard-link"]')
    assert link.get_attribute("href") == "/services/mlfactory/dashboard"
    screenshot(page, "lab-cost-popover")
    status.click()  # and closes it again
    popover.wait_for(state="detached", timeout=10_000)

    # the panel: uptime, cost so far, the dashboard, Stop
    page.locator('.jp-SideBar [data-id="mlfactory-sidebar"]').click()
    uptime = page.locator('[data-testid="mlfactory-uptime"]')
    uptime.wait_for(timeout=30_000)
    assert uptime.inner_text().endswith(("s", "min")), uptime.inner_text()
    cost = page.locator('[data-testid="mlfactory-cost"]')
    assert "USD so far at 0.05 USD/hour" in cost.inner_text()
    assert (
        page.locator('[data-testid="mlfactory-dashboard-link"]').get_attribute("href")
        == "/services/mlfactory/dashboard"
    )
    screenshot(page, "lab-panel-session")

    # Stop asks first, saves the unsaved edit, stops through the hub and says so
    _type(page, "typed before stopping")
    page.locator('[data-testid="mlfactory-stop"]').click()
    dialog = page.locator(".jp-Dialog")
    assert "Stop this server?" in dialog.inner_text()
    dialog.get_by_role("button", name="Stop the server").click()
    text = _notice(page)
    assert "You stopped this server from this JupyterLab." in text, text
    assert "Saved notes.txt at" in text and "before you stopped it" in text, text
    assert "Not saved" not in text
    screenshot(page, "lab-stopped-by-you")
    poll(lambda: "" not in client.servers(), 60, "dana's server stopped")
    (saved,) = list(hub.data.rglob("notes.txt"))
    assert saved.read_text() == "first line\ntyped before stopping"
    page.context.close()


def test_a_stop_from_the_hub_is_explained(hub, browser):
    page, client = _open_lab(browser, hub, "eli", "")
    _type(page, "not saved yet")
    # what the Hub Control Panel's "Stop Server" does: the hub's REST API
    admin = HubClient(hub)
    r = admin.delete("/hub/api/users/eli/server", timeout=120)
    assert r.status_code in (202, 204), r.text
    text = _notice(page)
    assert "stopped from the hub (the Hub Control Panel), by you or an admin" in text, text
    assert "Not saved: notes.txt" in text, text
    assert "Server unavailable" not in page.inner_text("body")  # JupyterLab's generic one
    screenshot(page, "lab-stopped-from-hub")
    start = page.locator(".jp-Dialog").get_by_role("button", name="Start the server again")
    assert start.is_visible()
    page.context.close()


def test_a_budget_stop_saves_first_and_says_budget(hub, browser):
    page, client = _open_lab(browser, hub, "fay", "")
    _type(page, "saved when the budget ran out")
    admin = HubClient(hub)
    # spent at once; stopped after the grace (longer than the server's 20 s budget cache)
    r = admin.put(
        "/services/mlfactory/api/budgets/user/fay",
        json={"amount": 0.000001, "enforcement": "stop", "grace_seconds": 45},
    )
    assert r.status_code == 201, r.text

    def saved() -> bool:
        # the budget poll runs each minute and when the window gets focus: focus it
        page.evaluate("window.dispatchEvent(new Event('focus'))")
        return page.locator(".jp-mod-dirty").count() == 0

    poll(saved, 40, "JupyterLab saving when it sees the stop budget spent")
    # a bound, not a timing: the 45 s grace, then the hub's stop
    poll(lambda: "" not in client.servers(), 240, "fay's server stopped by her budget")
    text = _notice(page)
    assert "The platform stopped this server because your budget is spent." in text, text
    assert "Saved notes.txt at" in text and "when the budget was spent" in text, text
    assert "Stopped at" in text  # the platform's own time of the stop
    screenshot(page, "lab-stopped-by-budget")
    page.context.close()
    (saved,) = [p for p in hub.data.rglob("notes.txt") if "fay" in p.parts]
    assert "saved when the budget ran out" in saved.read_text()


def test_change_resources_stops_then_opens_the_picker(hub, browser):
    page, client = _open_lab(browser, hub, "gus", "")
    page.locator('.jp-SideBar [data-id="mlfactory-sidebar"]').click()
    page.locator('[data-testid="mlfactory-change-resources"]').click()
    page.locator(".jp-Dialog").get_by_role("button", name="Stop and choose resources").click()
    page.wait_for_url(f"{hub.url}/hub/spawn/gus", timeout=90_000)
    page.locator('[data-testid="mlfactory-picker"]').wait_for(timeout=30_000)
    assert "" not in client.servers()
    page.context.close()


@pytest.fixture(scope="module")
def collaborative_hub() -> Iterator:
    """The shipped default: real-time collaboration on."""
    config = example_config()
    config["accounting"]["interval"] = "2s"
    data, config_path = prepare_hub("lab-session-rtc", config, PASSWORDS)
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def test_a_budget_stop_under_collaboration_keeps_the_edit(collaborative_hub, browser):
    """With collaboration the room saves each edit itself: the budget stop loses nothing,
    and the notice says so instead of listing a save of its own."""
    hub = collaborative_hub
    page, client = _open_lab(browser, hub, "hal", "")
    page.locator(".jp-FileEditor .cm-content").first.click()
    page.keyboard.press("Control+End")
    page.keyboard.type("kept by the room")

    def on_disk() -> bool:
        return any(
            "kept by the room" in p.read_text()
            for p in hub.data.rglob("notes.txt")
            if "hal" in p.parts
        )

    poll(on_disk, 60, "the collaboration room saving hal's edit")
    admin = HubClient(hub)
    r = admin.put(
        "/services/mlfactory/api/budgets/user/hal",
        json={"amount": 0.000001, "enforcement": "stop", "grace_seconds": 45},
    )
    assert r.status_code == 201, r.text
    poll(lambda: "" not in client.servers(), 240, "hal's server stopped by his budget")
    text = _notice(page)
    assert "The platform stopped this server because your budget is spent." in text, text
    assert "No open document had unsaved changes." in text, text
    assert "Not saved" not in text
    assert on_disk()
    page.context.close()
