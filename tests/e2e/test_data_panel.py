"""The Data panel in a real JupyterLab on a real hub, platform service and PostgreSQL
warehouse, driven by Chromium: a granted user sees the connection with its grant and snippet,
copies the snippet into a notebook cell and runs it, and the rows come back; a user without
a grant sees a plain empty state; a visitor to a shared workspace sees none of the owner's
connections. A store description carrying markup is shown as text."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator

import pytest
import yaml
from nbformat.v4 import new_code_cell, new_notebook
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from ..data.warehouse import prepare, stats_cluster, store_config
from ..pg import PostgresUnavailable
from ..service.pg_fixture import unavailable
from .conftest import discard_hub, example_config, log_in, prepare_hub, screenshot, start_hub
from .helpers import HubClient

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PASSWORDS = {"ren": "ren-reads-the-warehouse-1", "nia": "nia-has-no-grant-1"}
XSS_DESCRIPTION = '<img src=x onerror="window.__mlfXss=1"> orders of team A'
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
PANEL = '[data-testid="mlfactory-data"]'
TAB = '.jp-SideBar [data-id="mlfactory-data"]'
LAB_TIMEOUT_MS = 120_000
EMPTY = "No data stores are granted to your groups. Ask a data admin for a grant."


@pytest.fixture(scope="module")
def hub() -> Iterator:
    """ren is in data-science, which the warehouse grants; nia only in ml-engineering,
    which it does not."""
    try:
        cluster = stats_cluster()
    except PostgresUnavailable as e:
        unavailable(str(e))
    warehouse = prepare(cluster)
    config = example_config()
    members = {"data-science": ["ren"], "ml-engineering": ["nia"]}
    for g in config["groups"]:
        g["members"] = members.get(g["name"], [])
    data, config_path = prepare_hub("data-panel", config, PASSWORDS)
    secret = data / "warehouse-admin"  # read by the platform service only
    secret.write_text(warehouse.admin_secret)
    os.chmod(secret, 0o600)
    config["data_stores"] = [
        store_config(
            warehouse,
            admin_credentials={"file": str(secret)},
            description=XSS_DESCRIPTION,
            grants=[{"group": "data-science", "access": "read", "role": "dw_team_a"}],
        )
    ]
    config_path.write_text(yaml.safe_dump(config))
    hub = start_hub(data, config=config_path)
    try:
        yield hub
    finally:
        discard_hub(hub, config_path)
        cluster.stop()


def running(hub, user: str) -> HubClient:
    """``user``'s server runs, with ``data.ipynb``: an empty cell for the snippet, then a
    cell that reads team A's table through the engine the snippet made."""
    client = HubClient(hub, user, PASSWORDS[user])
    if client.ready() is None:
        client.spawn(profile="cpu-small")
        client.wait_ready(timeout=240)
    notebook = new_notebook(
        metadata={"kernelspec": KERNELSPEC},
        cells=[
            new_code_cell(""),
            new_code_cell('pd.read_sql("SELECT id, amount FROM a.orders ORDER BY id", engine)'),
        ],
    )
    r = client.put(
        f"/user/{user}/api/contents/data.ipynb",
        json={"type": "notebook", "content": json.loads(json.dumps(notebook))},
    )
    assert r.status_code in (200, 201), r.text
    return client


def open_panel(page, hub, owner: str, notebook: str = "") -> None:
    page.goto(f"{hub.url}/user/{owner}/lab" + (f"/tree/{notebook}" if notebook else ""))
    # a visitor (never the owner) is asked once to let the owner's server identify them
    authorize = page.get_by_role("button", name="Authorize")
    try:
        page.locator(TAB).or_(authorize).first.wait_for(timeout=LAB_TIMEOUT_MS)
    except PlaywrightTimeout:
        screenshot(page, f"data-panel-no-lab-{owner}")
        text = page.locator("body").inner_text()[:2000]
        raise AssertionError(f"no Lab at {page.url}:\n{text}") from None
    if authorize.count():
        authorize.click()
    page.locator(TAB).wait_for(timeout=LAB_TIMEOUT_MS)
    # Lab restores the workspace's layout (the Data panel may be open already, and a click
    # on its tab would then close it): click until the panel shows, a few times at most
    for _ in range(3):
        if page.locator(PANEL).is_visible():
            return
        page.locator(TAB).click()
        with contextlib.suppress(PlaywrightTimeout):  # closed by a late restore: again
            page.locator(PANEL).wait_for(state="visible", timeout=15_000)
    page.locator(PANEL).wait_for(state="visible")


def browser_of(browser, hub, user: str):
    context = browser.new_context(
        viewport={"width": 1400, "height": 900}, permissions=["clipboard-read", "clipboard-write"]
    )
    page = context.new_page()
    page.set_default_timeout(90_000)  # a bound on waiting for a loaded machine, not a measure
    log_in(page, hub, user, PASSWORDS[user], next_url="/hub/home")
    return context, page


def test_a_granted_user_copies_the_snippet_and_reads_rows(hub, browser):
    running(hub, "ren")
    context, page = browser_of(browser, hub, "ren")
    try:
        open_panel(page, hub, "ren", "data.ipynb")
        item = page.locator(f'{PANEL} [data-testid="mlfactory-data-connection"]')
        item.first.wait_for(timeout=60_000)
        assert item.count() == 1
        assert item.get_attribute("data-name") == "warehouse"
        texts = [p.text_content() for p in item.locator("p").all()]
        assert texts[0] == "postgresql · read · via data-science"
        # the description is text, never markup
        assert texts[1] == XSS_DESCRIPTION
        assert page.locator(f"{PANEL} img").count() == 0
        assert page.evaluate("window.__mlfXss") is None
        snippet = item.get_by_test_id("mlfactory-data-snippet").text_content()
        assert "mlfactory.data.connect('warehouse')" in snippet
        screenshot(page, "data-panel-granted")

        # copy, paste into the notebook's empty first cell, run it and the cell after it
        item.get_by_role("button", name="Copy").click()
        assert page.evaluate("navigator.clipboard.readText()") == snippet
        cells = page.locator(".jp-NotebookPanel .jp-CodeCell")
        cells.first.wait_for(timeout=60_000)
        page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        cells.first.locator(".cm-content").click()
        page.keyboard.press("Control+V")
        pasted = "\n".join(line.text_content() for line in cells.first.locator(".cm-line").all())
        assert pasted == snippet
        page.keyboard.press("Shift+Enter")  # runs the snippet, moves to the next cell
        page.keyboard.press("Shift+Enter")
        table = cells.nth(1).locator(".jp-OutputArea-output table")
        table.wait_for(timeout=120_000)
        # the snippet's own SELECT 1, then team A's five orders
        assert cells.first.locator(".jp-OutputArea-output table tbody tr").count() == 1
        rows = table.locator("tbody tr")
        assert rows.count() == 5
        assert rows.nth(4).locator("td").all_text_contents() == ["5", "50"]
        screenshot(page, "data-panel-snippet-ran")
    finally:
        context.close()


def test_a_user_without_a_grant_sees_a_plain_empty_state(hub, browser):
    running(hub, "nia")
    context, page = browser_of(browser, hub, "nia")
    try:
        open_panel(page, hub, "nia")
        body = page.locator(f"{PANEL} .mlfactory-DataPanel-body")
        body.get_by_text(EMPTY).wait_for(timeout=60_000)
        assert body.text_content() == EMPTY
        assert page.locator(f'{PANEL} [data-testid="mlfactory-data-connection"]').count() == 0
        assert page.locator(f'{PANEL} [data-testid="mlfactory-data-error"]').count() == 0
    finally:
        context.close()


def test_a_visitor_to_a_shared_workspace_sees_none_of_the_owners_connections(hub, browser):
    ren = running(hub, "ren")
    r = ren.post("/user/ren/mlfactory/workspace-shares", json={"user": "nia"})
    assert r.status_code == 200, r.text
    context, page = browser_of(browser, hub, "nia")
    try:
        open_panel(page, hub, "ren")
        error = page.locator(f'{PANEL} [data-testid="mlfactory-data-error"]')
        error.wait_for(timeout=60_000)
        shown = error.text_content()
        assert "Only the owner of this server (ren)" in shown, shown
        assert page.locator(f'{PANEL} [data-testid="mlfactory-data-connection"]').count() == 0
        assert "warehouse" not in page.locator(PANEL).text_content()
        screenshot(page, "data-panel-visitor")
    finally:
        context.close()
        r = ren.delete("/user/ren/mlfactory/workspace-shares", params={"user": "nia"})
        assert r.status_code in (200, 204), r.text
