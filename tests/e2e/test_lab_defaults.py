"""JupyterLab's defaults on the platform's servers, through a real hub and a browser.

JupyterLab asks every new user "Would you like to get notified about official Jupyter
news?". The bundle ships a JupyterLab settings override (``overrides.d/mlfactory.json`` in
``{sys.prefix}/share/jupyter/lab/settings``) that answers "never" for them; an admin turns
the question back on with JupyterLab's own ``labconfig/default_setting_overrides.json`` in
a Jupyter config folder the servers read, as the README says.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .conftest import (
    ADMIN_PASSWORD,
    RealHub,
    discard_hub,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
)

pytestmark = [pytest.mark.hub, pytest.mark.browser]

SHIPPED_HUB_CONFIG = Path(__file__).resolve().parents[2] / "hub_config" / "jupyterhub_config.py"
NOTIFICATION = "@jupyterlab/apputils-extension:notification"
NEWS_QUESTION = "Would you like to get notified about official Jupyter news?"


@pytest.fixture
def hub() -> Iterator[RealHub]:
    """A hub with the shipped platform config and hub config."""
    data, config_path = prepare_hub("lab-defaults")
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


@pytest.fixture
def hub_with_news_on() -> Iterator[RealHub]:
    """A hub whose admin switched the news question back on: JupyterLab's own default
    overrides in a config folder given to the servers, at the end of the admin's copy of
    the shipped hub config."""
    data, config_path = prepare_hub("lab-news-on", accounts={"admin": ADMIN_PASSWORD})
    jupyter_config = data / "jupyter-config"
    (jupyter_config / "labconfig").mkdir(parents=True)
    (jupyter_config / "labconfig" / "default_setting_overrides.json").write_text(
        json.dumps({NOTIFICATION: {"fetchNews": "none"}})
    )
    for path in (jupyter_config, jupyter_config / "labconfig"):
        path.chmod(0o755)  # the server runs under the user's own OS account when root
    hub_config = data.with_suffix(".py")
    hub_config.write_text(
        f"load_subconfig({str(SHIPPED_HUB_CONFIG)!r})\n"
        "c = get_config()\n"
        "c.Spawner.environment = {**c.Spawner.environment, "
        f"'JUPYTER_CONFIG_PATH': {str(jupyter_config)!r}}}\n"
    )
    hub = start_hub(data, config=config_path, hub_config=hub_config)
    yield hub
    discard_hub(hub, config_path)
    hub_config.unlink(missing_ok=True)
    shutil.rmtree(jupyter_config, ignore_errors=True)


def open_lab(hub: RealHub, page) -> None:
    """Log in as the admin, start the default server on the spawn page and wait until
    JupyterLab has restored its shell and loaded its settings."""
    log_in(page, hub, "admin", ADMIN_PASSWORD)
    page.locator('[data-testid="mlfactory-picker"]').wait_for(timeout=60_000)
    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    page.wait_for_url(re.compile(r".*/user/admin/lab.*"), timeout=120_000)
    # the mlfactory sidebar's tab is added as Lab restores; the news question comes from
    # the same start-up (after `restored` and the settings load), so wait for both
    page.locator('.jp-SideBar [data-id="mlfactory-sidebar"]').wait_for(timeout=90_000)
    page.locator(".jp-Notification-Status").wait_for(timeout=30_000)
    page.wait_for_load_state("networkidle")


def news_setting(hub: RealHub, page) -> tuple[object, object]:
    """The default of ``fetchNews`` the server gives Lab, and the user's own choice."""
    r = page.request.get(f"{hub.url}/user/admin/lab/api/settings/{NOTIFICATION}")
    assert r.status == 200, r.text()
    body = r.json()
    return body["schema"]["properties"]["fetchNews"]["default"], body["settings"].get("fetchNews")


def test_jupyterlab_does_not_ask_about_news(hub, page):
    open_lab(hub, page)
    assert news_setting(hub, page) == ("false", None)  # the platform's default; no user choice
    assert page.get_by_text(NEWS_QUESTION).count() == 0
    assert page.locator(".Toastify__toast").count() == 0
    assert page.locator(".jp-Notification-Status").inner_text().strip() == "0"
    screenshot(page, "lab-no-news-question")


def test_an_admin_switches_the_news_question_back_on(hub_with_news_on, page):
    hub = hub_with_news_on
    open_lab(hub, page)
    assert news_setting(hub, page) == ("none", None)  # "ask", JupyterLab's own default
    page.get_by_text(NEWS_QUESTION).wait_for(timeout=30_000)
