"""Workspace shares on a real hub, its proxy, a real single-user server and Chromium: alice
shares her server with bob through "Share workspace…" (the dialog says what that means), bob
opens /user/alice/lab and runs a cell; alice revokes from the Sharing panel and, at the
server's next check, bob's kernel websocket is closed and alice's server refuses him. A
revocation made through the hub's REST API (not our panel) cuts him off too, and a share
with a group reaches its member. Only the platform service may grant shares at the hub: a
user's own token is refused there, so the platform's sharing rules cannot be bypassed.
Any console error other than the refusals the test causes fails it.
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
PANEL = "/user/alice/mlfactory/workspace-shares"
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


@pytest.fixture(autouse=True)
def logs_on_failure(request, hub) -> Iterator[None]:
    """A failed test leaves the hub's and alice's server's logs, set-up failures included."""
    failed = request.session.testsfailed
    yield
    if request.session.testsfailed > failed:
        ARTIFACTS.mkdir(exist_ok=True)
        logs = [hub.log_path, *sorted(hub.data.rglob("alice*.log"))]
        (ARTIFACTS / f"workspace-share-failed-{request.node.name}.log").write_text(
            "\n".join(p.read_text(errors="replace") for p in logs if p.is_file())
        )


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
        self.room_sockets: list = []  # real-time collaboration: documents and awareness
        self.closed: set[int] = set()
        self.answered: set[int] = set()  # sockets the server has sent something on
        self.page.on("websocket", self._on_websocket)
        log_in(self.page, hub, user, PASSWORDS[user], next_url="/hub/home")

    def _on_websocket(self, ws) -> None:
        if "/user/alice/api/kernels/" in ws.url:
            self.kernel_sockets.append(ws)
        elif "/user/alice/api/collaboration/room/" in ws.url:
            self.room_sockets.append(ws)
        else:
            return
        # a reconnect the server refuses fails its handshake: no "close" then
        ws.on("close", lambda _: self.closed.add(id(ws)))
        ws.on("socketerror", lambda _: self.closed.add(id(ws)))
        ws.on("framereceived", lambda _: self.answered.add(id(ws)))

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
        cell = self.page.locator(".jp-NotebookPanel .jp-CodeCell").filter(visible=True).first
        cell.wait_for(timeout=60_000)
        self.page.get_by_text("Python 3 (ipykernel) | Idle").wait_for(timeout=90_000)
        cell.locator(".jp-InputArea-editor").click()
        self.page.keyboard.press("Shift+Enter")
        self.page.locator(".jp-OutputArea-output", has_text=expected).first.wait_for(timeout=90_000)

    def open_kernel_sockets(self) -> list:
        self.page.evaluate("0")  # a round trip, so Playwright delivers the socket events
        return [ws for ws in self.kernel_sockets if id(ws) not in self.closed]

    def open_room_sockets(self) -> list:
        self.page.evaluate("0")
        return [ws for ws in self.room_sockets if id(ws) not in self.closed]

    def rooms_answered_after(self, first: int) -> list:
        """Room sockets from the ``first``-th on that a server has sent anything on. A room
        answers every connection at once (its sync message); a reconnect that JupyterLab
        keeps retrying may be mid-handshake at any moment, so being open proves nothing."""
        self.page.evaluate("0")
        return [ws for ws in self.room_sockets[first:] if id(ws) in self.answered]

    def editor(self):
        """The first code cell's editor in the notebook on show. alice's layout keeps the
        tabs of earlier tests open behind it, hidden, so the first in the page may not be
        this notebook's."""
        cells = self.page.locator(".jp-NotebookPanel .jp-CodeCell .cm-content")
        return cells.filter(visible=True).first

    def cell_text(self) -> str:
        return self.editor().inner_text()

    def type_at_end(self, text: str) -> None:
        """Type at the end of the first code cell, as a person does."""
        self.editor().click()
        self.page.keyboard.press("Control+End")
        self.page.keyboard.type(text)

    def collaborators(self) -> list[str]:
        """The names JupyterLab's Collaboration panel lists (everyone here but oneself)."""
        tab = self.page.locator('.jp-SideBar [data-id="jp-collaboration-panel"]')
        if tab.get_attribute("aria-selected") != "true":
            tab.click()
        return self.page.locator(".jp-CollaboratorsList .jp-Collaborator").all_inner_texts()

    def refused(self) -> int:
        """What alice's server now answers bob's browser for her files."""
        r = self.page.request.get(
            f"{self.hub.url}/user/alice/api/contents", max_redirects=0, fail_on_status_code=False
        )
        return r.status

    def expected_refusals_seen(self, revoked: bool) -> None:
        """Drop the console lines the test's own revocation causes; everything else stays a
        problem.

        While shared, nothing is dropped: a visitor's JupyterLab must not ask alice's server
        for what only alice may see (her budget, her shares, her stop ticket...), so any 403
        from our routes (or any other console error) fails the test. Once revoked: every 403
        from alice's server, the kernel websocket failing to reconnect, and what JupyterLab
        says of kernel requests the closed socket dropped (the debugger's state)."""
        if not revoked:
            return
        cut = ("WebSocket", "Canceled future for")  # requests the closed kernel socket dropped
        # JupyterLab's own reaction to the refusal, with no URL in the line: a request it
        # does not catch answered 403 ("Forbidden"), and the kernel it can no longer reach
        lab_says = ("uncaught: Forbidden", "uncaught: Kernel is dead")
        self.console.problems = [
            p
            for p in self.console.problems
            if not (
                ("/user/alice/" in p and ("403" in p or any(c in p for c in cut)))
                or p.startswith(lab_says)
            )
        ]

    def sees_visiting_state(self) -> None:
        """The Sharing panel says whose workspace this is instead of asking for it. (The
        layout is alice's workspace's, so the panel may already be open: never toggle it
        shut.)"""
        tab = self.page.locator(SIDEBAR)
        note = self.page.locator('.mlfactory-SharingPanel [data-testid="mlfactory-visiting"]')

        def shown() -> bool:
            if note.is_visible():
                return True
            if "lm-mod-current" not in (tab.get_attribute("class") or ""):
                tab.click()
            return False

        poll(shown, 60, "the Sharing panel's visiting note")
        assert "You are visiting alice's workspace" in note.text_content()


def ws_notebook() -> dict:
    nb = new_notebook(metadata={"kernelspec": KERNELSPEC}, cells=[new_code_cell("print(6 * 7)")])
    return json.loads(json.dumps(nb))


def grantees(client: HubClient) -> list[tuple[str, str]]:
    r = client.get(PANEL)
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
        bob.sees_visiting_state()
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
        r = alice_api.post(PANEL, json={"user": "bob"})
        assert r.status_code == 200, r.text
        # alice's server may still hold the hub's refusal of bob for its short cache (2 s)
        poll(lambda: bob.refused() == 200, 60, "alice's server letting bob in again")
        bob.kernel_sockets.clear()
        bob.open_lab("ws.ipynb")
        bob.run_first_cell("42")
        assert bob.open_kernel_sockets()
        # the owner holds no ``shares`` scope any more: an admin revokes at the hub
        r = HubClient(hub).request("PATCH", SHARES, json={"user": "bob"})
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


def test_only_the_service_grants_shares_and_the_rules_hold(hub):
    """The bypass this closes: alice's own token (the hub's token page gives the same) may no
    longer share her server at the hub, so ``sharing.groups``/``sharing.users`` cannot be
    skipped; her panel's route shares through the platform service, which applies them."""
    alice_api = alice_running(hub)
    for body in ({"user": "bob"}, {"group": "ml-engineering"}):
        r = alice_api.post(SHARES, json=body)
        assert r.status_code == 403, r.text  # the hub: alice holds no ``shares`` scope
    assert alice_api.get(SHARES).json()["items"] == []  # she may still read her shares
    # the rules, through the panel's route: a group alice is not in, a name nobody has
    r = alice_api.post(PANEL, json={"group": "ml-engineering"})
    assert r.status_code == 404, r.text
    assert "'ml-engineering'" in r.json()["message"]
    assert "sharing.groups" in r.json()["message"]
    r = alice_api.post(PANEL, json={"user": "nobody-at-all"})
    assert r.status_code == 404 and "'nobody-at-all'" in r.json()["message"], r.text
    assert alice_api.get(SHARES).json()["items"] == []  # nothing was shared
    # a recipient the rules allow is shared with, and shows at the hub
    r = alice_api.post(PANEL, json={"user": "bob"})
    assert r.status_code == 200, r.text
    assert ("user", "bob") in [(g["kind"], g["name"]) for g in r.json()["grantees"]]
    assert [i["user"]["name"] for i in alice_api.get(SHARES).json()["items"]] == ["bob"]
    r = alice_api.delete(PANEL, params={"user": "bob"})
    assert r.status_code == 200 and r.json()["grantees"] == [], r.text
    assert alice_api.get(SHARES).json()["items"] == []


def test_a_group_share_reaches_its_member(hub, browser):
    """JupyterHub 6.1.1 leaves group shares out of a token's scopes; the hub config's
    correction (hub_config/group_shares.py) lets carol in, and only while the share lasts."""
    alice_api = alice_running(hub)
    pages: list[Visitor] = []
    try:
        r = alice_api.post(PANEL, json={"group": "reviewers"})
        assert r.status_code == 200, r.text
        assert ("group", "reviewers") in grantees(alice_api)
        carol = Visitor(browser, hub, "carol")
        pages.append(carol)
        bob = Visitor(browser, hub, "bob")
        pages.append(bob)
        assert bob.refused() in (302, 403)  # not in the group
        carol.open_lab()
        assert carol.refused() == 200
        carol.sees_visiting_state()
        carol.expected_refusals_seen(revoked=False)
        r = alice_api.delete(PANEL, params={"group": "reviewers"})
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


def saved_source(alice_api: HubClient, path: str) -> str:
    """The first cell as alice's server has it on disk (the room saves by itself)."""
    r = alice_api.get(f"/user/alice/api/contents/{path}")
    assert r.status_code == 200, r.text
    return "".join(r.json()["content"]["cells"][0]["source"])


def test_two_browsers_edit_live_and_revoke_closes_the_room(hub, browser):
    """Real-time collaboration (jupyter-collaboration) on a shared workspace: alice and bob
    type into the same notebook and each sees the other's text and name; once alice revokes,
    bob's collaboration websockets close, his next request is refused, and what he types
    then reaches neither alice's notebook nor the file."""
    alice_api = alice_running(hub)
    path = "live.ipynb"
    r = alice_api.put(
        f"/user/alice/api/contents/{path}", json={"type": "notebook", "content": ws_notebook()}
    )
    assert r.status_code in (200, 201), r.text
    r = alice_api.post(PANEL, json={"user": "bob"})
    assert r.status_code == 200, r.text
    # a layout without earlier tests' notebooks: each open notebook's kernel would be cut
    # off too, each with its own "Kernel died" dialog
    r = alice_api.delete("/user/alice/lab/api/workspaces/default")
    assert r.status_code in (204, 404), r.text

    pages: list[Visitor] = []
    try:
        alice = Visitor(browser, hub, "alice")
        pages.append(alice)
        bob = Visitor(browser, hub, "bob")
        pages.append(bob)
        alice.open_lab(path)
        bob.open_lab(path)  # a fresh browser: the hub asks him to authorize alice's server
        assert bob.refused() == 200
        for v in (alice, bob):
            v.editor().wait_for(timeout=LAB_TIMEOUT_MS)
        poll(lambda: bob.open_room_sockets(), 60, "bob's collaboration websockets open")

        # --- each sees the other's typing, and who is there --------------------------------
        alice.type_at_end("  # alice was here")
        poll(lambda: "# alice was here" in bob.cell_text(), 60, "alice's text in bob's page")
        bob.type_at_end("  # bob too")
        poll(lambda: "# bob too" in alice.cell_text(), 60, "bob's text in alice's page")
        poll(lambda: any("bob" in c for c in alice.collaborators()), 60, "bob in alice's list")
        poll(lambda: any("alice" in c for c in bob.collaborators()), 60, "alice in bob's list")
        # a visitor is shown as themselves, never as the server's owner
        assert not any("alice" in c for c in alice.collaborators())
        assert not any("bob" in c for c in bob.collaborators())
        poll(lambda: "# bob too" in saved_source(alice_api, path), 60, "the room saving")
        screenshot(alice.page, "workspace-share-live-alice")
        screenshot(bob.page, "workspace-share-live-bob")
        bob.expected_refusals_seen(revoked=False)

        # --- alice revokes: bob's rooms close, and his later typing goes nowhere -----------
        r = alice_api.delete(PANEL, params={"user": "bob"})
        assert r.status_code == 200, r.text
        poll(lambda: not bob.open_room_sockets(), CUT_OFF_S, "bob's collaboration sockets closed")
        reconnects = len(bob.room_sockets)  # every later one is JupyterLab reconnecting
        poll(lambda: bob.refused() == 403, CUT_OFF_S, "alice's server refusing bob")
        # JupyterLab tells bob his kernel is gone (its socket was closed too): he clicks Ok
        bob.page.locator(".jp-Dialog .jp-mod-accept").first.click(timeout=60_000)
        bob.type_at_end("  # bob after revoke")
        assert "after revoke" in bob.cell_text()  # his page took it; alice's must not
        alice.type_at_end("  # alice alone")
        poll(lambda: "# alice alone" in saved_source(alice_api, path), 60, "alice's edit saved")
        assert "after revoke" not in saved_source(alice_api, path)
        assert "after revoke" not in alice.cell_text()
        assert not bob.rooms_answered_after(reconnects), "a refused reconnect must not open a room"
        bob.expected_refusals_seen(revoked=True)
    except BaseException:
        save_logs(hub, pages, "workspace-share-live")
        raise
    finally:
        problems = [f"{v.user}: {p}" for v in pages for p in v.console.problems]
        for v in pages:
            v.page.context.close()
    if problems:
        pytest.fail(f"{len(problems)} console problem(s):\n" + "\n".join(problems), pytrace=False)
