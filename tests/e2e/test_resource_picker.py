"""The resource picker on a real hub: a restricted group sees only its profiles, adjusts
CPU with a live price, starts, and the server runs under the limits it asked for."""

from __future__ import annotations

import json
import os
import re

import pytest

from .conftest import (
    ADMIN_PASSWORD,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
)

pytestmark = [pytest.mark.hub, pytest.mark.browser]

DANA_PASSWORD = "dana-data-science-1"


@pytest.fixture(scope="module")
def picker_hub():
    """The shipped example config with dana in the data-science group (CPU profiles only)."""
    config = example_config()
    for group in config["groups"]:
        if group["name"] == "data-science":
            group["members"] = ["dana"]
    data, config_path = prepare_hub("picker", config, {"dana": DANA_PASSWORD})
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def test_group_member_picks_cpu_and_gets_those_limits(picker_hub, page):
    log_in(page, picker_hub, "dana", DANA_PASSWORD)
    page.goto(f"{picker_hub.url}/hub/spawn")
    picker = page.locator('[data-testid="mlfactory-picker"]')
    picker.wait_for()
    cards = page.locator('[data-testid^="profile-card-"]')
    slugs = sorted(c.get_attribute("data-testid") for c in cards.all())
    # data-science may use the three CPU profiles; the GPU profile is not offered at all
    assert slugs == ["profile-card-cpu-large", "profile-card-cpu-medium", "profile-card-cpu-small"]

    page.locator('[data-testid="profile-card-cpu-large"]').click()
    price = page.locator('[data-testid="price-cpu-large"]')
    before = price.inner_text()
    cpu = page.locator('input[name="cpu--cpu-large"]')
    assert cpu.get_attribute("max") == "4"  # the group narrows the profile's 1–8
    cpu.fill("1")
    cpu.dispatch_event("input")
    page.wait_for_function(
        "([el, old]) => el.textContent !== old", arg=[price.element_handle(), before]
    )
    assert price.inner_text() != before
    memory = page.locator('input[name="memory--cpu-large"]')
    memory.fill("4")
    memory.dispatch_event("input")
    screenshot(page, "resource-picker")
    page.click("form#spawn_form input[type=submit], form#spawn_form button[type=submit]")
    page.wait_for_url(re.compile(r".*/user/dana/lab.*"), timeout=90_000)

    info = page.request.get(f"{picker_hub.url}/user/dana/mlfactory/api/info").json()
    assert info["profile"]["slug"] == "cpu-large"
    assert info["profile"]["cpu"] == 1
    assert info["profile"]["memory"] == "4Gi"
    limits = info["limits"]
    assert len(limits["cpus"]) == 1  # pinned to one core
    if os.geteuid() == 0:  # the hub can write cgroups only as root
        assert limits["cpu_quota"] == pytest.approx(1.0)
        assert limits["memory_limit"] == 4 * 2**30
    assert limits["cuda_visible_devices"] == ""  # no GPU asked for: none visible


def test_rest_spawn_out_of_policy_is_refused_and_starts_nothing(picker_hub, page):
    log_in(page, picker_hub, "dana", DANA_PASSWORD)
    token = page.request.post(
        f"{picker_hub.url}/hub/api/users/dana/tokens",
        data=json.dumps({"note": "test", "expires_in": 600}),
        headers={"X-XSRFToken": _xsrf(page), "Content-Type": "application/json"},
    ).json()["token"]
    headers = {"Authorization": f"token {token}"}
    for options, field in [
        ({"profile": "gpu-t4"}, "profile"),
        ({"profile": "cpu-large", "cpu": 8}, "cpu"),
        ({"profile": "cpu-small", "colour": "red"}, "colour"),
    ]:
        r = page.request.post(
            f"{picker_hub.url}/hub/api/users/dana/servers/extra",
            data=json.dumps(options),
            headers=headers,
        )
        assert r.status == 400, (options, r.text())
        assert field in r.json()["message"]
    servers = page.request.get(f"{picker_hub.url}/hub/api/users/dana", headers=headers).json()
    assert "extra" not in servers["servers"]


def test_admin_sees_gpu_profile_unavailable_with_reason(picker_hub, page):
    log_in(page, picker_hub, "admin", ADMIN_PASSWORD, next_url="/hub/home")
    page.goto(f"{picker_hub.url}/hub/spawn/admin/gpu")
    card = page.locator('[data-testid="profile-card-gpu-t4"]')
    card.wait_for()
    assert card.locator('input[name="profile"]').is_disabled()
    assert "GPU" in card.locator(".mlfactory-unavailable").inner_text()
    screenshot(page, "resource-picker-admin-gpu-unavailable")


def _xsrf(page) -> str:
    cookies = {c["name"]: c["value"] for c in page.context.cookies()}
    return cookies["_xsrf"]
