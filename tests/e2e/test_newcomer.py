"""The newcomer path on a real hub: log in as the admin, start a server, see mlfactory in Lab."""

from __future__ import annotations

import re
import urllib.error
import urllib.request

import pytest

from .conftest import ADMIN_PASSWORD, screenshot

pytestmark = [pytest.mark.hub, pytest.mark.browser]


def test_login_page_is_branded_and_keeps_xsrf(real_hub, page):
    page.goto(f"{real_hub.url}/hub/login")
    assert page.locator("text=mlfactory").first.is_visible()
    assert page.locator("form input[name=_xsrf]").count() == 1
    screenshot(page, "login-page")


def test_login_next_cannot_redirect_off_site(real_hub, page):
    page.goto(f"{real_hub.url}/hub/login?next=https://evil.example/steal")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()
    assert page.url.startswith(real_hub.url)


def test_wrong_password_is_refused(real_hub, page):
    page.goto(f"{real_hub.url}/hub/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", "not-the-password")
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_load_state()
    assert "/hub/login" in page.url
    assert page.locator(".login_error, .alert-danger, #login_error").first.is_visible()


def test_admin_logs_in_starts_server_and_sees_mlfactory_sidebar(real_hub, page):
    page.goto(f"{real_hub.url}/hub/login")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    # The hub shows the resource picker with the default profile chosen; start it.
    page.locator('[data-testid="mlfactory-picker"]').wait_for()
    assert page.locator('[data-testid="profile-card-cpu-small"] input[name=profile]').is_checked()
    screenshot(page, "spawn-page-picker")
    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    page.wait_for_url(re.compile(r".*/user/admin/lab.*"), timeout=90_000)
    tab = page.locator('.jp-SideBar [data-id="mlfactory-sidebar"]')
    tab.wait_for(timeout=60_000)
    tab.click()
    user = page.locator('[data-testid="mlfactory-user"]')
    user.wait_for(timeout=30_000)
    assert "admin" in user.inner_text()
    screenshot(page, "jupyterlab-mlfactory-sidebar")


def test_server_extension_refuses_requests_without_credentials(real_hub):
    # Runs after the login test started admin's server; without a cookie or token
    # the request must not reach the API.
    req = urllib.request.Request(f"{real_hub.url}/user/admin/mlfactory/api/info")
    try:
        with urllib.request.urlopen(req, timeout=30) as r:  # noqa: S310 - local hub
            status, url = r.status, r.url
    except urllib.error.HTTPError as e:
        status, url = e.code, req.full_url
    # urllib follows the redirect to the hub's login page; it must never be the API's JSON.
    assert status in (401, 403) or "/hub/login" in url


def test_admin_finds_signups_and_password_pages(real_hub, page):
    page.goto(f"{real_hub.url}/hub/login?next=/hub/home")
    page.fill("input[name=username]", "admin")
    page.fill("input[name=password]", ADMIN_PASSWORD)
    page.click("input[type=submit], button[type=submit]")
    page.wait_for_url(re.compile(r".*/hub/home"))
    page.click("#mlfactory-signups-link")
    page.wait_for_url(re.compile(r".*/hub/authorize"))
    assert page.get_by_text("Password").first.is_visible()
    screenshot(page, "admin-signups")
