"""The resource picker on a real hub: a restricted group sees only its profiles and the
ranges its group allows, adjusts CPU and memory with a live price and summary, starts, and
the server runs under the limits it asked for. The picker's script is also checked against
the server's own rendering, value by value, in Chromium."""

from __future__ import annotations

import json
import os
import re

import pytest
from mlfactory.hub.platform_config import PACKAGED_CONFIG, load_platform_config
from mlfactory.spawner.form import Enforcement, picker_for_user
from mlfactory.spawner.picker import render_picker
from mlfactory.spawner.pricing import hourly_price
from mlfactory.spawner.profiles import HostCapabilities, user_access

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
GIB = 2**30


def _group(config: dict, name: str) -> dict:
    (group,) = [g for g in config["groups"] if g["name"] == name]
    return group


def _expected_price(slug: str, cpu: float, memory_gib: float) -> str:
    """What the pricing rules charge, as the card shows it (2 decimals after rounding to 4)."""
    config = load_platform_config(PACKAGED_CONFIG)
    profile = config.profile(slug)
    price = hourly_price(
        profile, cpu=cpu, memory=int(memory_gib * GIB), gpu=0, pricing=config.pricing
    )
    return f"{round(price, 4):.2f} {config.platform.currency}/hour"


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

    large = page.locator('[data-testid="profile-card-cpu-large"]')
    # The card states the range dana's group allows, not the profile's own 1–8 / 4–64.
    caps = _group(example_config(), "data-science")["ranges"]["cpu-large"]
    cpu_max, memory_max = caps["cpu"]["max"], caps["memory"]["max"].removesuffix("Gi")
    ranges = large.locator('[data-testid="ranges-cpu-large"]').inner_text()
    assert f"{caps['cpu']['min']}–{cpu_max} cores" in ranges
    assert f"–{memory_max} GiB memory" in ranges
    text = large.inner_text()
    assert "–8 cores" not in text and "64 GiB" not in text and "–64" not in text

    large.click()
    price = page.locator('[data-testid="price-cpu-large"]')
    summary = page.locator('[data-testid="summary-cpu-large"]')
    before = price.inner_text(), summary.inner_text()
    cpu = page.locator('input[name="cpu--cpu-large"]')
    assert cpu.get_attribute("max") == str(cpu_max)  # the group narrows the profile's 1–8
    memory = page.locator('input[name="memory--cpu-large"]')
    assert memory.get_attribute("max") == memory_max
    cpu.fill("1")  # fill types the value: the page sees input events, as from a keyboard
    page.wait_for_function(
        "([el, old]) => el.textContent !== old", arg=[price.element_handle(), before[0]]
    )
    # Price and summary change together (issue 21, item 9).
    assert summary.inner_text() == "1 core · 16 GiB memory · 50 GiB disk"
    assert price.inner_text() == _expected_price("cpu-large", 1, 16)
    memory.fill("4")
    page.wait_for_function(
        "el => el.textContent.includes('4 GiB memory')", arg=summary.element_handle()
    )
    assert summary.inner_text() == "1 core · 4 GiB memory · 50 GiB disk"
    assert price.inner_text() == _expected_price("cpu-large", 1, 4)
    assert (price.inner_text(), summary.inner_text()) != before
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


def _picker_markup(previous: dict) -> str:
    """The spawn form a data-science user gets, with ``previous`` as their last choice."""
    config = load_platform_config(PACKAGED_CONFIG)
    view = picker_for_user(
        config,
        user_access(config, ["data-science"], False),
        HostCapabilities(),
        previous,
        Enforcement(cpu=True, memory=True),
    )
    return f"<form>{render_picker(view)}</form>"


def test_script_shows_what_the_server_renders_for_the_same_values(page):
    """The script's live summary and price equal the server's rendering of those values (the
    page a user gets back after choosing them), so neither can drift from the other."""
    page.set_content(_picker_markup({}))
    served = page.context.new_page()
    card = '[data-testid="profile-card-cpu-large"]'
    for cpu, memory in [(1, 4), (3, 12), (4, 32), (2, 16), (1, 8)]:
        page.fill('input[name="cpu--cpu-large"]', str(cpu))
        page.fill('input[name="memory--cpu-large"]', str(memory))
        live = (
            page.locator(f'{card} [data-testid="summary-cpu-large"]').inner_text(),
            page.locator(f'{card} [data-testid="price-cpu-large"]').inner_text(),
        )
        served.set_content(
            _picker_markup({"profile": "cpu-large", "cpu": str(cpu), "memory": f"{memory}Gi"})
        )
        rendered = (
            served.locator('[data-testid="summary-cpu-large"]').inner_text(),
            served.locator('[data-testid="price-cpu-large"]').inner_text(),
        )
        assert live == rendered, (cpu, memory)
        assert live[0].startswith(f"{cpu} core")
        assert live[1] == _expected_price("cpu-large", cpu, memory)
    served.close()
