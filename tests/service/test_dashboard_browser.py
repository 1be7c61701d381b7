"""The cost dashboard in a real Chromium: the charts and budget bars render and show."""

from __future__ import annotations

import shutil

import pytest

from ..e2e.conftest import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS
from .test_dashboard import two_teams


@pytest.mark.browser
async def test_dashboard_renders_charts_and_progress_bars(service, hub_state):
    if not shutil.which(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: the test command installs Debian's chromium")
    from playwright.async_api import async_playwright

    svc = await service()
    two_teams(svc)
    token = hub_state.add_user("root", admin=True)
    # The async API: the service under test serves from this same event loop.
    async with async_playwright() as p:
        browser = await p.chromium.launch(
            executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True
        )
        try:
            context = await browser.new_context(
                viewport={"width": 1280, "height": 900},
                extra_http_headers={"Authorization": f"token {token}"},
            )
            page = await context.new_page()
            errors: list[str] = []
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            response = await page.goto(f"{svc.url}/dashboard")
            assert response is not None and response.status == 200

            for chart in ("#chart-teams", "#chart-projects", "#chart-users", "#chart-burn"):
                await page.locator(chart).wait_for(state="visible")
                box = await page.locator(chart).bounding_box()
                assert box and box["width"] > 200 and box["height"] > 40, (chart, box)
            assert await page.locator("#chart-projects rect.mlf-bar").count() >= 2
            assert await page.locator("#chart-teams polyline").count() == 2

            bar = page.locator("svg.mlf-progress").first
            await bar.wait_for(state="visible")
            box = await bar.bounding_box()
            assert box and box["width"] > 100 and box["height"] >= 10, box
            fill = await page.locator("svg.mlf-progress rect.mlf-fill").first.bounding_box()
            assert fill and fill["width"] > 0
            assert await page.get_by_role("progressbar").count() >= 4
            # bob's own budget is the most spent, so it comes first and shows as over
            first = page.locator("tr.budget").first
            assert "bob" in await first.inner_text()
            assert "level-over" in await first.locator("td.num").get_attribute("class")

            ARTIFACTS.mkdir(exist_ok=True)
            await page.screenshot(path=str(ARTIFACTS / "service-dashboard.png"), full_page=True)
            assert errors == []  # e.g. nothing the Content-Security-Policy refused
        finally:
            await browser.close()
