"""A normal first session in JupyterLab leaves the browser console clean: log in on a real
hub, start a server, open a notebook, the Components and History panels and a component's
page. Any console error, uncaught page error, or webpack's shared-module version warning
("Unsatisfied version … of shared singleton module", "No satisfying version …", what an
extension built against another JupyterLab causes) fails the test, listed in full."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field

import nbformat
import pytest

from .conftest import (
    ADMIN_PASSWORD,
    RealHub,
    api_token,
    discard_hub,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
)

pytestmark = [pytest.mark.hub, pytest.mark.browser]

KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
NOTEBOOK = "first-hour.ipynb"
# webpack's module federation: a shared package's version does not match what an
# extension was built against (a warning, but the extension then runs on another version).
VERSION_MISMATCH = re.compile(r"Unsatisfied version|No satisfying version", re.I)


@dataclass
class Console:
    """What the page said: console errors, version warnings, uncaught errors."""

    problems: list[str] = field(default_factory=list)

    def on_console(self, message) -> None:
        where = (message.location or {}).get("url", "")
        if message.type == "error" or VERSION_MISMATCH.search(message.text):
            self.problems.append(f"console.{message.type}: {message.text} [{where}]")

    def on_page_error(self, error) -> None:
        self.problems.append(f"uncaught: {error}")

    def report(self) -> str:
        return "\n".join(self.problems)


@pytest.fixture
def hub() -> Iterator[RealHub]:
    data, config_path = prepare_hub("lab-console")
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def test_a_first_session_leaves_the_console_clean(hub, page):
    console = Console()
    page.on("console", console.on_console)
    page.on("pageerror", console.on_page_error)

    log_in(page, hub, "admin", ADMIN_PASSWORD)
    page.locator('[data-testid="mlfactory-picker"]').wait_for(timeout=60_000)
    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    page.wait_for_url(re.compile(r".*/user/admin/lab.*"), timeout=120_000)
    page.locator('.jp-SideBar [data-id="mlfactory-components"]').wait_for(timeout=90_000)

    # A notebook in the workspace, opened as a person would (by its URL in Lab).
    notebook = nbformat.v4.new_notebook(metadata={"kernelspec": KERNELSPEC})
    notebook.cells.append(nbformat.v4.new_code_cell("x = 1"))
    token = api_token(page, hub, "admin")
    r = page.request.put(
        f"{hub.url}/user/admin/api/contents/{NOTEBOOK}",
        data=json.dumps({"type": "notebook", "content": notebook}),
        headers={"Authorization": f"token {token}"},
    )
    assert r.status in (200, 201), r.text()
    page.goto(f"{hub.url}/user/admin/lab/tree/{NOTEBOOK}")
    page.locator(".jp-Notebook .jp-Cell").first.wait_for(timeout=90_000)
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=60_000)
    # nbdime's own extension (rebuilt for this JupyterLab) still adds its diff button.
    page.locator('.jp-NotebookPanel-toolbar [data-command="nbdime:diff-checkpoint"]').wait_for()

    # The Components panel, a search, and a component's page in the main area.
    page.locator('.jp-SideBar [data-id="mlfactory-components"]').click()
    panel = page.locator('[data-testid="mlfactory-components"]')
    result = panel.locator('[data-testid="components-result"][data-name="time_split"]')
    result.wait_for(timeout=30_000)
    result.click()
    component = page.locator('[data-testid="components-page"][data-component="time_split"]')
    component.get_by_test_id("components-readme").locator("h1").wait_for(timeout=30_000)

    # The History panel, following the notebook.
    page.locator('.jp-SideBar [data-id="mlfactory-history"]').click()
    page.locator('[data-testid="mlfactory-history"]').wait_for(state="visible")
    page.wait_for_load_state("networkidle")
    screenshot(page, "lab-console-first-session")

    if console.problems:
        pytest.fail(
            f"{len(console.problems)} console problem(s) in a normal session:\n{console.report()}",
            pytrace=False,
        )
