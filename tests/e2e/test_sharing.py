"""Sharing notebooks in JupyterLab, on a real hub, its proxy, the platform service, three
single-user servers and Chromium: alice shares through the Share dialog (searching as she
types; a name that does not exist is named back to her), bob previews what she shared in a
sandboxed frame, carol opens her own copy (its History says where it came from), alice
updates and revokes, and a notebook whose outputs hold scripts runs nothing in the page
that previews it. Any console error in any of the three pages fails the test.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output

from .conftest import discard_hub, example_config, log_in, prepare_hub, screenshot, start_hub
from .helpers import HubClient, poll
from .test_lab_console import Console

pytestmark = [pytest.mark.hub, pytest.mark.browser]

PASSWORDS = {
    "alice": "alice-shares-notebooks-1",
    "bob": "bob-reads-notebooks-22",
    "carol": "carol-copies-notebooks-333",
}
KERNELSPEC = {"name": "python3", "display_name": "Python 3 (ipykernel)", "language": "python"}
SIDEBAR = '.jp-SideBar [data-id="mlfactory-sharing"]'
ACCEPT = ".jp-Dialog-footer button.jp-mod-accept"
REJECT = ".jp-Dialog-footer button.jp-mod-reject"
LAB_TIMEOUT_MS = 120_000


@pytest.fixture(scope="module")
def hub() -> Iterator:
    """alice, bob and carol, all three in the group "analysts"."""
    config = example_config()
    config["groups"].append(
        {
            "name": "analysts",
            "description": "Analysts",
            "profiles": ["cpu-small"],
            "members": ["alice", "bob", "carol"],
        }
    )
    data, config_path = prepare_hub("sharing", config, PASSWORDS)
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def q4_notebook() -> dict:
    nb = new_notebook(
        metadata={"kernelspec": KERNELSPEC},
        cells=[
            new_markdown_cell("# Q4 results"),
            new_code_cell(
                "print('total:', 42)",
                execution_count=1,
                outputs=[new_output("stream", name="stdout", text="total: 42\n")],
            ),
        ],
    )
    return json.loads(json.dumps(nb))


def hostile_notebook() -> dict:
    """Outputs that try to reach the page that shows them."""
    script = (
        "<script>window.mlfRan = 'frame';"
        "try { window.parent.mlfRan = 'parent'; } catch (e) {}"
        "var p = document.createElement('p'); p.id = 'mlf-ran';"
        "p.textContent = 'script ran in the sandbox'; document.body.appendChild(p);</script>"
    )
    svg = (
        '<svg xmlns="http://www.w3.org/2000/svg" onload="window.parent.mlfSvg = 1">'
        '<rect width="4" height="4"/></svg>'
    )
    nb = new_notebook(
        metadata={"kernelspec": KERNELSPEC},
        cells=[
            new_markdown_cell("# Hostile outputs"),
            new_code_cell(
                "show()",
                execution_count=1,
                outputs=[
                    new_output("display_data", data={"text/html": script, "text/plain": "x"}),
                    new_output("display_data", data={"image/svg+xml": svg}),
                ],
            ),
        ],
    )
    return json.loads(json.dumps(nb))


class Lab:
    """One user's JupyterLab page, with what its console said."""

    def __init__(self, browser, hub, user: str, path: str = "") -> None:
        self.user = user
        self.console = Console()
        self.page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
        self.page.on("console", self.console.on_console)
        self.page.on("pageerror", self.console.on_page_error)
        log_in(self.page, hub, user, PASSWORDS[user], next_url="/hub/home")
        self.page.goto(f"{hub.url}/user/{user}/lab" + (f"/tree/{path}" if path else ""))
        self.page.locator(SIDEBAR).wait_for(timeout=LAB_TIMEOUT_MS)

    def sharing_panel(self):
        panel = self.page.get_by_test_id("mlfactory-sharing")
        if not panel.is_visible():
            self.page.locator(SIDEBAR).click()
        panel.wait_for(state="visible")
        return panel

    def refresh(self):
        panel = self.sharing_panel()
        with self.page.expect_response(lambda r: "/mlfactory/shares/received" in r.url):
            panel.get_by_test_id("mlfactory-sharing-refresh").click()
        return panel

    def item(self, list_testid: str, share_id: str):
        return self.page.get_by_test_id(list_testid).locator(
            f'[data-testid="mlfactory-share-item"][data-share-id="{share_id}"]'
        )


def alice_shares(client: HubClient) -> list[dict]:
    """alice's shares, as her server's share route lists them."""
    r = client.get("/user/alice/mlfactory/shares")
    assert r.status_code == 200 and r.headers.get("Content-Type", "").startswith(
        "application/json"
    ), (r.status_code, r.headers, r.text[:2000])
    return r.json()["shares"]


def suggestions(form) -> list[tuple[str, str]]:
    """The suggestions on show, read in one go: the list re-renders as the answers to each
    typed letter arrive, and reading its items one locator at a time waited 30 s for an item
    that the next answer had removed."""
    cells = form.locator('[data-testid="mlfactory-share-suggestion"]')
    pairs = cells.evaluate_all("els => els.map(e => [e.dataset.kind, e.dataset.name])")
    return [(kind, name) for kind, name in pairs]


def test_share_preview_copy_update_revoke(hub, browser):
    admin = HubClient(hub)
    for user in PASSWORDS:
        r = admin.post(f"/hub/api/users/{user}")
        assert r.status_code in (201, 409), r.text
    for user in PASSWORDS:
        admin.spawn(user=user, profile="cpu-small")
    for user in PASSWORDS:
        admin.wait_ready(user=user, timeout=240)
    clients = {u: HubClient(hub, u, p) for u, p in PASSWORDS.items()}
    for name, nb in (("q4.ipynb", q4_notebook()), ("hostile.ipynb", hostile_notebook())):
        r = clients["alice"].put(
            f"/user/alice/api/contents/{name}", json={"type": "notebook", "content": nb}
        )
        # the hub's log says why, where the proxy could not reach her server (503)
        assert r.status_code in (200, 201), f"{r.status_code}\n{hub.log()[-4000:]}"

    labs: list[Lab] = []
    try:
        alice = Lab(browser, hub, "alice", "q4.ipynb")
        labs.append(alice)
        page = alice.page

        # --- alice shares q4 with bob, view only, through the dialog -------------------
        page.get_by_test_id("mlfactory-share-button").click()
        form = page.get_by_test_id("mlfactory-share-form")
        form.get_by_test_id("mlfactory-share-search").fill("nobody")
        page.locator(ACCEPT).click()
        error = page.get_by_test_id("mlfactory-share-error")
        error.wait_for()
        assert "'nobody'" in error.text_content()  # the service's words, naming it
        # the browser logs every refused request; this one was meant to be refused
        refused = poll(
            lambda: [p for p in alice.console.problems if "404" in p and "/mlfactory/shares?" in p],
            30,
            "the refused share in alice's console",
        )
        assert len(refused) == 1, alice.console.problems
        alice.console.problems.remove(refused[0])
        form.locator('[data-testid="mlfactory-share-recipient"][data-name="nobody"] button').click()
        form.get_by_test_id("mlfactory-share-search").press_sequentially("bo")
        bob_suggested = form.locator(
            '[data-testid="mlfactory-share-suggestion"][data-kind="user"][data-name="bob"]'
        )
        bob_suggested.wait_for()
        poll(lambda: suggestions(form) == [("user", "bob")], 30, "only bob suggested for 'bo'")
        bob_suggested.click()
        form.locator('[data-testid="mlfactory-share-recipient"][data-name="bob"]').wait_for()
        form.get_by_test_id("mlfactory-share-message").fill("Have a look <b>now</b>")
        page.locator(ACCEPT).click()
        link = page.get_by_test_id("mlfactory-share-link").input_value()
        assert f"{hub.url}/services/mlfactory/shares/" in link and "token" not in link
        page.locator(REJECT).click()
        (view,) = alice_shares(clients["alice"])
        assert (view["users"], view["groups"], view["mode"]) == (["bob"], [], "view")
        assert link.endswith(f"/shares/{view['id']}")

        # --- bob sees it in "Shared with me" and previews it in a sandboxed frame -------
        bob = Lab(browser, hub, "bob")
        labs.append(bob)
        bob.sharing_panel()
        item = bob.item("mlfactory-shared-with-me", view["id"])
        item.wait_for()
        text = item.text_content()
        assert "q4.ipynb" in text and "from alice" in text and "version 1" in text
        assert "Have a look <b>now</b>" in text  # the message is text, never HTML
        assert item.get_by_test_id("mlfactory-share-open-copy").count() == 0  # view only
        item.get_by_test_id("mlfactory-share-preview-open").click()
        frame_sel = f'[data-testid="mlfactory-share-preview"][data-share-id="{view["id"]}"] iframe'
        frame = bob.page.locator(frame_sel)
        frame.wait_for()
        assert frame.get_attribute("sandbox") == "allow-scripts"
        inside = bob.page.frame_locator(frame_sel)
        inside.locator("h1", has_text="Q4 results").wait_for(timeout=60_000)
        inside.get_by_text("total: 42").wait_for()
        assert bob.page.request.get(link).status == 200

        # --- a notebook whose outputs hold scripts runs nothing in bob's page ------------
        r = clients["alice"].post(
            "/user/alice/mlfactory/shares",
            json={"path": "hostile.ipynb", "users": ["bob"], "mode": "view"},
        )
        assert r.status_code == 201, r.text
        hostile = r.json()["share"]["id"]
        bob.refresh()
        bob.item("mlfactory-shared-with-me", hostile).get_by_test_id(
            "mlfactory-share-preview-open"
        ).click()
        hostile_sel = f'[data-testid="mlfactory-share-preview"][data-share-id="{hostile}"] iframe'
        bob.page.frame_locator(hostile_sel).locator("#mlf-ran").wait_for(timeout=60_000)
        assert bob.page.evaluate("() => [window.mlfRan ?? null, window.mlfSvg ?? null]") == [
            None,
            None,
        ]
        reach = bob.page.evaluate(
            """(sel) => {
                const frame = document.querySelector(sel);
                let doc;
                try { doc = frame.contentWindow.document ? 'reachable' : 'none'; }
                catch (e) { doc = e.name; }
                return [frame.contentDocument === null, doc];
            }""",
            hostile_sel,
        )
        assert reach == [True, "SecurityError"]  # an opaque origin: no same-origin access

        # --- alice shares q4 with the group, copy mode, from the file browser's menu ------
        browser_tab = page.locator('.jp-SideBar [data-id="filebrowser"]')
        if browser_tab.get_attribute("aria-selected") != "true":
            browser_tab.click()
        page.locator('.jp-DirListing-item[data-file-type="notebook"]', has_text="q4.ipynb").click(
            button="right"
        )
        page.locator(".lm-Menu-item", has_text="Share…").click()
        form.get_by_test_id("mlfactory-share-search").press_sequentially("ana")
        form.locator(
            '[data-testid="mlfactory-share-suggestion"][data-kind="group"][data-name="analysts"]'
        ).click()
        form.get_by_test_id("mlfactory-share-mode-copy").check()
        page.locator(ACCEPT).click()
        page.get_by_test_id("mlfactory-share-link").wait_for()
        page.locator(REJECT).click()
        shares = alice_shares(clients["alice"])
        (copy,) = [s for s in shares if s["groups"] == ["analysts"]]
        assert copy["mode"] == "copy" and copy["users"] == []

        # --- carol opens her own copy; its History says where it came from ---------------

        r = clients["carol"].post("/user/carol/mlfactory/history/init")
        assert r.status_code == 200, r.text  # carol keeps a history of her workspace
        carol = Lab(browser, hub, "carol")
        labs.append(carol)
        carol.sharing_panel()
        item = carol.item("mlfactory-shared-with-me", copy["id"])
        item.wait_for()
        assert carol.item("mlfactory-shared-with-me", view["id"]).count() == 0
        item.get_by_test_id("mlfactory-share-open-copy").click()
        name = "q4 (shared by alice).ipynb"
        carol.page.locator(".jp-NotebookPanel .jp-Cell").first.wait_for(timeout=60_000)
        carol.page.locator(".lm-TabBar-tabLabel", has_text=name).first.wait_for()
        r = clients["carol"].get(f"/user/carol/api/contents/{name}")
        assert r.status_code == 200, r.text
        came = r.json()["content"]["metadata"]["mlfactory"]["copied_from"]
        assert (came["owner"], came["share_id"], came["version"]) == ("alice", copy["id"], 1)
        carol.page.locator('.jp-SideBar [data-id="mlfactory-history"]').click()
        history = carol.page.get_by_test_id("mlfactory-history")
        history.get_by_text("Copy of “q4.ipynb” shared by alice (version 1)").first.wait_for(
            timeout=60_000
        )

        # --- alice updates the view share: bob sees version 2 ----------------------------
        alice.refresh()
        mine = alice.item("mlfactory-my-shares", view["id"])
        with page.expect_response(lambda r: f"/mlfactory/shares/{view['id']}" in r.url):
            mine.get_by_test_id("mlfactory-share-update").click()
        poll(lambda: "version 2" in mine.text_content(), 30, "alice's share at version 2")
        bob.refresh()
        poll(
            lambda: "version 2" in bob.item("mlfactory-shared-with-me", view["id"]).text_content(),
            30,
            "bob sees version 2",
        )

        # --- alice revokes: gone from bob's panel, and the link answers 404 -------------
        mine.get_by_test_id("mlfactory-share-revoke").click()
        with page.expect_response(lambda r: r.request.method == "DELETE"):
            page.locator(ACCEPT).click()
        bob.refresh()
        poll(
            lambda: bob.item("mlfactory-shared-with-me", view["id"]).count() == 0,
            30,
            "the revoked share gone from bob's panel",
        )
        assert bob.item("mlfactory-shared-with-me", hostile).count() == 1
        assert bob.page.request.get(link).status == 404
    except BaseException:
        for lab in labs:
            screenshot(lab.page, f"sharing-{lab.user}")
        raise
    finally:
        problems = [f"{lab.user}: {p}" for lab in labs for p in lab.console.problems]
        for lab in labs:
            lab.page.context.close()
    if problems:
        pytest.fail(f"{len(problems)} console problem(s):\n" + "\n".join(problems), pytrace=False)
