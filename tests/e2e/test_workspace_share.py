"""Workspace shares on a real hub, its proxy, a real single-user server and Chromium: alice
shares her server with bob through "Share workspace…" (the dialog says what that means), bob
opens /user/alice/lab and runs a cell; alice revokes from the Sharing panel and, at the
server's next check, bob's kernel websocket is closed and alice's server refuses him. A
revocation made through the hub's REST API (not our panel) cuts him off too, and a share
with a group reaches its member. Any console error other than the refusals the test causes
fails it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from nbformat.v4 import new_code_cell, new_notebook

from .conftest import (
    ARTIFACTS,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
)
from .helpers import HubClient, poll
from .test_lab_console import Console

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PASSWORDS = {
    "alice": "alice-shares-her-server-1",
    "bob": "bob-visits-servers-22",
    "carol": "carol-in-the-group-333",
}
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SIDEBAR = '.jp-SideBar [data-id="mlfactory-sharing"]'
ACCEPT = ".jp-Dialog-footer button.jp-mod-accept"
LAB_TIMEOUT_MS = 120_000
# How long to wait for a revocation to bite: a bound on waiting, not the measure. The server
# checks every 2 s (workspace_shares.CHECK_INTERVAL_S) plus one hub round trip, which meets
# the 5 s on an idle machine; a loaded CI machine may take longer, and that is not a
# failure of this test's subject (tests never assert on wall-clock time).
CUT_OFF_S = 60
SHARES = "/hub/api/shares/alice/"
WARNING = (
    "People you share this workspace with can run code as you, see all your files and use "
    "your budget"
)


@pytest.fixture(scope="module")
def hub() -> Iterator:
    """alice, bob and carol; alice and carol are in the group "reviewers"."""
    config = example_config()
    config["groups"].append(
        {
            "name": "reviewers",
            "description": "Reviewers",
            "profiles": ["cpu-small"],
            "members": ["alice", "carol"],
        }
    )
    data, config_path = prepare_hub("workspace-share", config, PASSWORDS)
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


class Visitor:
    """One user's browser on alice's server, with its console and websockets."""

    def __init__(self, browser, hub, user: str) -> None:
        self.user = user
        self.hub = hub
        self.console = Console()
        self.page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        self.page.on("console", self.console.on_console)
        self.page.on("pageerror", self.console.on_page_error)
        self.kernel_sockets: list = []
        self.closed: set[int] = set()
        self.page.on("websocket", self._on_websocket)
        log_in(self.page, hub, user, PASSWORDS[user], next_url="/hub/home")

    def _on_websocket(self, ws) -> None:
        if "/user/alice/api/kernels/" in ws.url:
            self.kernel_sockets.append(ws)
            # a reconnect the server refuses fails its handshake: no "close" then
            ws.on("close", lambda _: self.closed.add(id(ws)))
            ws.on("socketerror", lambda _: self.closed.add(id(ws)))

    def open_lab(self, path: str = "") -> None:
        self.page.goto(f"{self.hub.url}/user/alice/lab" + (f"/tree/{path}" if path else ""))
        # JupyterHub asks a visitor (never the owner) once to let alice's server identify them
        authorize = self.page.get_by_role("button", name="Authorize")
        self.page.locator(SIDEBAR).or_(authorize).first.wait_for(timeout=LAB_TIMEOUT_MS)
        if authorize.count():
            assert "/user/alice/" in self.page.text_content("body")
            authorize.click()
        self.page.locator(SIDEBAR).wait_for(timeout=LAB_TIMEOUT_MS)

    def run_first_cell(self, expected: str) -> None:
        cell = self.page.locator(".jp-NotebookPanel .jp-CodeCell").first
        cell.wait_for(timeout=60_000)
        self.page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        cell.locator(".jp-InputArea-editor").click()
        self.page.keyboard.press("Shift+Enter")
        self.page.locator(".jp-OutputArea-output", has_text=expected).first.wait_for(timeout=90_000)

    def open_kernel_sockets(self) -> list:
        self.page.evaluate("0")  # a round trip, so Playwright delivers the socket events
        return [ws for ws in self.kernel_sockets if id(ws) not in self.closed]

    def refused(self) -> int:
        """What alice's server now answers bob's browser for her files."""
        r = self.page.request.get(
            f"{self.hub.url}/user/alice/api/contents", max_redirects=0, fail_on_status_code=False
        )
        return r.status

    def expected_refusals_seen(self, revoked: bool) -> None:
        """Drop the console lines our own refusals cause; everything else stays a problem.

        While shared: a visitor's JupyterLab still asks alice's server for what only alice
        may see (her budget, her notebook shares...) and gets 403. Once revoked: every 403
        from alice's server, the kernel websocket failing to reconnect, and what JupyterLab
        says of kernel requests the closed socket dropped (the debugger's state)."""
        where = "/user/alice/" if revoked else "/user/alice/mlfactory/"
        cut = ("WebSocket", "Canceled future for")  # requests the closed kernel socket dropped
        self.console.problems = [
            p
            for p in self.console.problems
            if not (where in p and ("403" in p or (revoked and any(c in p for c in cut))))
        ]


def ws_notebook() -> dict:
    nb = new_notebook(metadata={"kernelspec": KERNELSPEC}, cells=[new_code_cell("print(6 * 7)")])
    return json.loads(json.dumps(nb))


def grantees(client: HubClient) -> list[tuple[str, str]]:
    r = client.get("/user/alice/mlfactory/workspace-shares")
    assert r.status_code == 200, r.text
    return [(g["kind"], g["name"]) for g in r.json()["grantees"]]


def alice_running(hub) -> HubClient:
    """Everyone's hub user exists and alice's server runs; alice's REST client."""
    admin = HubClient(hub)
    for user in PASSWORDS:
        r = admin.post(f"/hub/api/users/{user}")
        assert r.status_code in (201, 409), r.text
    if admin.ready(user="alice") is None:
        admin.spawn(user="alice", profile="cpu-small")
        admin.wait_ready(user="alice", timeout=240)
    return HubClient(hub, "alice", PASSWORDS["alice"])


def save_logs(hub, pages: list[Visitor], name: str) -> None:
    for v in pages:
        screenshot(v.page, f"{name}-{v.user}")
    ARTIFACTS.mkdir(exist_ok=True)
    logs = [hub.log_path, *sorted(hub.data.rglob("alice*.log"))]
    (ARTIFACTS / f"{name}.log").write_text(
        "\n".join(p.read_text(errors="replace") for p in logs if p.is_file())
    )


def test_share_run_revoke_cut_off(hub, browser):
    alice_api = alice_running(hub)
    r = alice_api.put(
        "/user/alice/api/contents/ws.ipynb", json={"type": "notebook", "content": ws_notebook()}
    )
    assert r.status_code in (200, 201), r.text

    pages: list[Visitor] = []
    try:
        alice = Visitor(browser, hub, "alice")
        pages.append(alice)
        alice.open_lab()
        page = alice.page

        # --- alice shares her workspace with bob through the dialog ------------------------
        page.locator(SIDEBAR).click()
        section = page.get_by_test_id("mlfactory-workspace-shares")
        section.wait_for()
        assert WARNING in section.text_content()
        section.get_by_test_id("mlfactory-workspace-share-open").click()
        form = page.get_by_test_id("mlfactory-workspace-share-form")
        assert WARNING in form.get_by_test_id("mlfactory-workspace-share-warning").text_content()
        form.get_by_test_id("mlfactory-workspace-share-search").press_sequentially("bo")
        form.locator(
            '[data-testid="mlfactory-workspace-share-suggestion"][data-name="bob"]'
        ).click()
        form.locator(
            '[data-testid="mlfactory-workspace-share-recipient"][data-name="bob"]'
        ).wait_for()
        page.locator(ACCEPT).click()
        link = page.get_by_test_id("mlfactory-workspace-share-link")
        link.wait_for()
        assert link.text_content() == f"{hub.url}/user/alice/lab"
        page.locator(".jp-Dialog-footer").get_by_role("button", name="Done").click()
        section.locator('[data-testid="mlfactory-workspace-grantee"][data-name="bob"]').wait_for()
        assert grantees(alice_api) == [("user", "bob")]
        hub_view = alice_api.get(SHARES)
        assert hub_view.status_code == 200, hub_view.text
        assert [i["user"]["name"] for i in hub_view.json()["items"]] == ["bob"]

        # --- bob opens alice's Lab and runs a cell -------------------------------------------
        bob = Visitor(browser, hub, "bob")
        pages.append(bob)
        bob.open_lab("ws.ipynb")
        bob.run_first_cell("42")
        assert bob.open_kernel_sockets(), "bob's kernel websocket"
        assert bob.refused() == 200
        bob.expected_refusals_seen(revoked=False)

        # --- alice revokes from the panel: bob is cut off at the server's next check ----------
        item = section.locator('[data-testid="mlfactory-workspace-grantee"][data-name="bob"]')
        item.get_by_test_id("mlfactory-workspace-revoke").click()
        with page.expect_response(
            lambda r: "/mlfactory/workspace-shares" in r.url and r.request.method == "DELETE"
        ) as revoked:
            page.locator(ACCEPT).click()
        assert revoked.value.status == 200
        poll(lambda: not bob.open_kernel_sockets(), CUT_OFF_S, "bob's kernel websocket closed")
        poll(lambda: bob.refused() == 403, CUT_OFF_S, "alice's server refusing bob")
        assert section.locator('[data-testid="mlfactory-workspace-grantee"]').count() == 0
        bob.expected_refusals_seen(revoked=True)

        # --- shared again, then revoked through the hub's own API: cut off just the same ----
        r = alice_api.post(SHARES, json={"user": "bob"})
        assert r.status_code == 200, r.text
        # alice's server may still hold the hub's refusal of bob for its short cache (2 s)
        poll(lambda: bob.refused() == 200, 60, "alice's server letting bob in again")
        bob.kernel_sockets.clear()
        bob.open_lab("ws.ipynb")
        bob.run_first_cell("42")
        assert bob.open_kernel_sockets()
        r = alice_api.request("PATCH", SHARES, json={"user": "bob"})
        assert r.status_code == 200, r.text
        poll(lambda: not bob.open_kernel_sockets(), CUT_OFF_S, "bob cut off after the hub API")
        poll(lambda: bob.refused() == 403, CUT_OFF_S, "alice's server refusing bob again")
        bob.expected_refusals_seen(revoked=True)

    except BaseException:
        save_logs(hub, pages, "workspace-share")
        raise
    finally:
        problems = [f"{v.user}: {p}" for v in pages for p in v.console.problems]
        for v in pages:
            v.page.context.close()
    if problems:
        pytest.fail(f"{len(problems)} console problem(s):\n" + "\n".join(problems), pytrace=False)


@pytest.mark.xfail(
    strict=True,
    reason=(
        "JupyterHub 6.1.1 counts a user's group shares when it authorizes OAuth but not when "
        "it resolves the token's scopes (scopes.get_scopes_for adds only owner.shared_with_me "
        "for an APIToken), so the server refuses a group member: 'user carol is not allowed'"
    ),
)
def test_a_group_share_reaches_its_member(hub, browser):
    alice_api = alice_running(hub)
    pages: list[Visitor] = []
    try:
        r = alice_api.post("/user/alice/mlfactory/workspace-shares", json={"group": "reviewers"})
        assert r.status_code == 200, r.text
        assert ("group", "reviewers") in grantees(alice_api)
        carol = Visitor(browser, hub, "carol")
        pages.append(carol)
        bob = Visitor(browser, hub, "bob")
        pages.append(bob)
        assert bob.refused() in (302, 403)  # not in the group
        carol.open_lab()
        assert carol.refused() == 200
        carol.expected_refusals_seen(revoked=False)
        r = alice_api.delete(
            "/user/alice/mlfactory/workspace-shares", params={"group": "reviewers"}
        )
        assert r.status_code == 200, r.text
        poll(lambda: carol.refused() == 403, CUT_OFF_S, "alice's server refusing carol")
        carol.expected_refusals_seen(revoked=True)
    except BaseException:
        save_logs(hub, pages, "workspace-share-group")
        raise
    finally:
        problems = [f"{v.user}: {p}" for v in pages for p in v.console.problems]
        for v in pages:
            v.page.context.close()
    if problems:
        pytest.fail(f"{len(problems)} console problem(s):\n" + "\n".join(problems), pytrace=False)
