"""The History panel in a real JupyterLab: track the workspace, save versions of a
notebook, compare two with nbdime, restore one; server text stays text."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import nbformat
import pytest

from .conftest import RealLab, screenshot, start_lab, stop_lab
from .helpers import poll

pytestmark = pytest.mark.browser

NOTEBOOK = "analysis.ipynb"
FIRST = "rows = 'first draft'"
SECOND = "rows = 'second draft'"
XSS = "<img src=x onerror=alert(1)>"


def write_notebook(root: Path) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}  # fmt: skip
    nb.cells = [
        nbformat.v4.new_markdown_cell("# Analysis", id="intro"),
        nbformat.v4.new_code_cell("rows = 'start'", id="work"),
    ]
    nbformat.write(nb, root / NOTEBOOK)


def saved_source(root: Path) -> str:
    nb = json.loads((root / NOTEBOOK).read_text())
    return "".join(nb["cells"][1]["source"])


@pytest.fixture
def lab_with_local_remotes(tmp_path: Path) -> Iterator[RealLab]:
    """A `jupyter lab` whose history accepts file:// remotes (refused in production)."""
    server = start_lab(tmp_path / "work", "--NotebookHistory.allow_local_remotes=True")
    yield server
    stop_lab(server)


def git(*args: str, cwd: Path) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=Colleague", "-c", "user.email=colleague@example.com", *args],
        cwd=cwd, check=True, capture_output=True, text=True, timeout=60,
    ).stdout  # fmt: skip


def commit_cell(clone: Path, cell: int, source: str) -> None:
    """A colleague on mlfactory changes one cell of the notebook (and so its paired
    py:percent text file, which jupytext reads the cells from) and pushes."""
    import jupytext

    nb = nbformat.read(clone / NOTEBOOK, as_version=4)
    nb.cells[cell].source = source
    nbformat.write(nb, clone / NOTEBOOK)
    paired = (clone / NOTEBOOK).with_suffix(".py")
    assert paired.is_file(), "the default pairing keeps a py:percent copy in the repository"
    paired.write_text(jupytext.writes(nb, fmt="py:percent"))
    git("commit", "-am", f"colleague: {source}", cwd=clone)
    git("push", "origin", "HEAD:main", cwd=clone)


def open_history(page):
    page.locator('.jp-SideBar [data-id="mlfactory-history"]').click()
    panel = page.locator('[data-testid="mlfactory-history"]')
    start = panel.locator('[data-testid="mlfactory-history-init"]')
    start.wait_for(timeout=15_000)
    start.click()
    panel.get_by_label("Version message").wait_for(timeout=15_000)
    return panel


def wait_for_text(locator, text: str, timeout: float = 15) -> None:
    poll(
        lambda: text in locator.inner_text(),
        timeout,
        lambda: f"{text!r} in {locator.inner_text()!r}",
    )


def open_notebook(page, lab) -> None:
    page.goto(lab.lab_url(NOTEBOOK))
    page.locator(".jp-Notebook .jp-Cell").nth(1).wait_for(timeout=90_000)
    # JupyterLab may still ask which kernel to use: take what it offers
    dialog = page.locator(".jp-Dialog .jp-mod-accept")
    if dialog.count():
        dialog.first.click()
    # the kernel's start fills in metadata (an unsaved edit): let it, then save
    page.locator(".jp-StatusBar-TextItem", has_text="Idle").first.wait_for(timeout=60_000)
    dirty = page.locator(".lm-TabBar-tab.jp-mod-dirty")
    if realtime(page):
        # the collaboration room saves it by itself (YDocExtension.document_save_delay); a
        # Ctrl+S landing while it writes meets jupyter-collaboration's "File Changed" race
        dirty.wait_for(state="detached", timeout=60_000)
    elif dirty.count():
        page.locator(".jp-Notebook").first.click()
        page.keyboard.press("Control+s")
        dirty.wait_for(state="detached", timeout=10_000)


def realtime(page) -> bool:
    """Whether this JupyterLab edits documents through jupyter-collaboration."""
    return not page.evaluate(
        "() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
        ".disableRTC === true"
    )


def set_cell_text(page, text: str) -> None:
    editor = page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".cm-content")
    editor.click()
    page.keyboard.press("Control+a")
    page.keyboard.type(text)
    if realtime(page):  # the collaboration room saves the edit by itself
        page.locator(".lm-TabBar-tab.jp-mod-dirty").wait_for(state="detached", timeout=60_000)
        return
    page.keyboard.press("Control+s")
    page.locator(".lm-TabBar-tab.jp-mod-dirty").wait_for(state="detached", timeout=10_000)


def save_version(page, panel, message: str, expected_count: int) -> None:
    panel.get_by_label("Version message").fill(message)
    panel.get_by_role("button", name="Save version").click()
    expect_versions(panel, expected_count)


def expect_versions(panel, count: int, timeout: float = 15) -> None:
    rows = panel.locator("li.mlfactory-HistoryVersion")
    poll(
        lambda: rows.count() == count,
        timeout,
        lambda: f"{count} versions listed, not {rows.count()}",
    )


def save_version_by_shortcut(page, panel, message: str, expected_count: int) -> None:
    """Accel Alt S (the documented shortcut) in the notebook asks for a message."""
    page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".cm-content").click()
    page.keyboard.press("Control+Alt+s")
    dialog = page.locator(".jp-Dialog")
    dialog.locator("input").fill(message)
    dialog.get_by_role("button", name="Save version").click()
    expect_versions(panel, expected_count)


def dismiss_news(page) -> None:
    """JupyterLab's own "get notified about news?" toast would cover the screenshots."""
    no = page.locator(".Toastify__toast").get_by_role("button", name="No", exact=True)
    if no.count():
        no.first.click()
        page.locator(".Toastify__toast").filter(has_text="news").wait_for(state="detached")


def close_diff_tab(page) -> None:
    tab = page.locator("#jp-main-dock-panel .lm-TabBar-tab", has_text="→")
    tab.locator(".lm-TabBar-tabCloseIcon").click()
    tab.wait_for(state="detached")


def cell_editor_text(page) -> str:
    return page.locator(".jp-Notebook .jp-Cell").nth(1).locator(".cm-content").inner_text()


def test_the_empty_state_button_is_not_clipped_at_the_default_width(lab, page):
    """An untracked workspace offers "Start tracking this workspace": at the sidebar's
    default width its whole text shows (nothing cut off on the right or below)."""
    page.goto(lab.lab_url())
    page.locator('.jp-SideBar [data-id="mlfactory-history"]').click()
    panel = page.locator('[data-testid="mlfactory-history"]')
    start = panel.locator('[data-testid="mlfactory-history-init"]')
    start.wait_for(timeout=60_000)
    assert start.inner_text() == "Start tracking this workspace"
    box = start.evaluate(
        """b => {
            const own = b.getBoundingClientRect();
            const side = b.closest('.lm-Widget.jp-SideStackedPanel, #jp-left-stack')
                || b.closest('[data-testid="mlfactory-history"]');
            const area = side.getBoundingClientRect();
            return {scrollWidth: b.scrollWidth, clientWidth: b.clientWidth,
                    scrollHeight: b.scrollHeight, clientHeight: b.clientHeight,
                    right: own.right, areaRight: area.right, areaWidth: area.width};
        }"""
    )
    assert box["scrollWidth"] <= box["clientWidth"], box
    assert box["scrollHeight"] <= box["clientHeight"], box
    assert box["right"] <= box["areaRight"], box  # and the button itself fits the panel
    dismiss_news(page)
    screenshot(page, "history-empty-state")


def test_save_compare_and_restore_versions(lab, page):
    write_notebook(lab.root)
    alerts: list[str] = []
    page.on("dialog", lambda d: (alerts.append(d.message), d.dismiss()))
    open_notebook(page, lab)

    panel = open_history(page)
    assert panel.locator('[data-testid="mlfactory-history-notebook"]').inner_text() == NOTEBOOK

    set_cell_text(page, FIRST)
    save_version(page, panel, "first", 1)
    set_cell_text(page, SECOND)
    save_version_by_shortcut(page, panel, "second", 2)
    rows = panel.locator("li.mlfactory-HistoryVersion")
    assert "first" in rows.nth(1).inner_text() and "second" in rows.nth(0).inner_text()

    # compare the two versions: nbdime shows the cell's old and new text
    for i in (0, 1):
        rows.nth(i).locator("input[type=checkbox]").check()
    panel.locator('[data-testid="mlfactory-history-compare"]').click()
    diff = page.locator('[data-testid="mlfactory-history-diff"]')
    changed = diff.locator(".jp-Cell-diff:not(.jp-Diff-unchanged)")
    changed.first.wait_for(timeout=30_000)
    assert FIRST in changed.first.inner_text() and SECOND in changed.first.inner_text()
    scroller = diff.locator(".nbdime-root")
    assert "mlfactory-mod-hideOutputs" in scroller.get_attribute("class")
    diff.get_by_role("button", name="Show outputs").click()
    assert "mlfactory-mod-hideOutputs" not in scroller.get_attribute("class")
    dismiss_news(page)
    screenshot(page, "history-diff")
    close_diff_tab(page)

    # restore the first version: the open notebook and the file go back to it
    rows.nth(1).get_by_role("button", name="Restore").click()
    page.locator(".jp-Dialog").get_by_role("button", name="Restore version", exact=True).click()
    expect_versions(panel, 3)
    poll(
        lambda: FIRST in cell_editor_text(page),
        15,
        lambda: f"the first version in the editor, not {cell_editor_text(page)!r}",
    )
    assert saved_source(lab.root) == FIRST
    assert "Restore" in rows.nth(0).inner_text()

    # a message written as HTML is shown as text, never run
    set_cell_text(page, "rows = 'third'")
    save_version(page, panel, XSS, 4)
    message = rows.nth(0).locator(".mlfactory-HistoryVersion-message")
    assert message.inner_text() == XSS
    assert panel.locator("img").count() == 0
    assert alerts == []
    dismiss_news(page)
    screenshot(page, "history-panel")


def test_remote_push_pull_and_conflicts(lab_with_local_remotes, page, tmp_path):
    lab = lab_with_local_remotes
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(remote)], check=True)
    write_notebook(lab.root)
    open_notebook(page, lab)
    panel = open_history(page)
    save_version(page, panel, "first", 1)

    section = panel.locator('[data-testid="mlfactory-history-remote"]')
    section.locator("summary").click()
    section.get_by_label("Repository URL").fill(remote.as_uri())
    section.get_by_label("Username").fill("alice")
    token = "s3cret-token-123"
    section.get_by_label("Token").fill(token)
    section.get_by_role("button", name="Save remote").click()
    wait_for_text(section, "(credentials saved)")
    assert section.get_by_label("Token").input_value() == ""
    assert token not in section.inner_text()
    status = page.request.get(
        f"{lab.url}/mlfactory/history/status", headers={"Authorization": f"token {lab.token}"}
    )
    assert status.ok and token not in status.text()

    result = section.locator('[data-testid="mlfactory-history-remote-result"]')
    section.get_by_role("button", name="Push").click()
    wait_for_text(result, "Pushed your versions to the remote.")

    # a colleague edits the heading: pulling brings it into the open notebook
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(remote), str(clone)], check=True)
    commit_cell(clone, 0, "# Analysis (reviewed)")
    section.get_by_role("button", name="Pull").click()
    wait_for_text(result, "Pulled the versions from the remote.")
    wait_for_text(page.locator(".jp-Notebook .jp-Cell").first, "Analysis (reviewed)")
    expect_versions(panel, 2)

    # both sides change the same line: the pull is undone and the conflict listed
    commit_cell(clone, 1, "rows = 'theirs'")
    set_cell_text(page, "rows = 'mine'")
    save_version(page, panel, "mine", 3)
    section.get_by_role("button", name="Pull").click()
    conflicts = section.locator('[data-testid="mlfactory-history-conflicts"]')
    conflicts.wait_for(timeout=30_000)
    assert NOTEBOOK in conflicts.inner_text()
    assert saved_source(lab.root) == "rows = 'mine'"
    dismiss_news(page)
    conflicts.scroll_into_view_if_needed()
    screenshot(page, "history-remote-conflict")


def test_settings_are_saved(lab, page):
    write_notebook(lab.root)
    open_notebook(page, lab)
    panel = open_history(page)
    settings = panel.locator('[data-testid="mlfactory-history-settings"]')
    settings.locator("summary").click()
    settings.locator('[data-testid="mlfactory-history-pairing"]').select_option("md")
    minutes = settings.get_by_label("Automatic version every")
    minutes.fill("-3")  # the browser refuses it before anything is sent
    settings.get_by_role("button", name="Save settings").click()
    assert minutes.evaluate("el => el.validity.rangeUnderflow")
    assert "Settings saved." not in settings.inner_text()
    minutes.fill("5")
    settings.get_by_role("button", name="Save settings").click()
    wait_for_text(settings, "Settings saved.")
    stored = page.request.get(
        f"{lab.url}/mlfactory/history/settings", headers={"Authorization": f"token {lab.token}"}
    ).json()
    assert stored == {"pairing": "md", "autosave_minutes": 5}


def test_diff_spinner_cancel_on_close_and_timeout(lab, page):
    """The diff shows a spinner while it loads, its request is cancelled when the tab
    is closed first, and a server timeout (504) is said in words."""
    write_notebook(lab.root)
    open_notebook(page, lab)
    panel = open_history(page)
    save_version(page, panel, "first", 1)
    set_cell_text(page, SECOND)

    held: list = []
    failed: list[str] = []
    page.route("**/mlfactory/history/diff?**", lambda route: held.append(route))  # unanswered
    page.on("requestfailed", lambda r: failed.append(r.url) if "/history/diff" in r.url else None)

    def compare() -> None:
        panel.locator("li.mlfactory-HistoryWorking input[type=checkbox]").check()
        panel.locator("li.mlfactory-HistoryVersion input[type=checkbox]").first.check()
        panel.locator('[data-testid="mlfactory-history-compare"]').click()

    compare()
    diff = page.locator('[data-testid="mlfactory-history-diff"]')
    diff.locator(".jp-Spinner").wait_for(timeout=10_000)
    poll(lambda: held, 15, "the diff requested")
    assert "from=" in held[0].request.url and "to=working" in held[0].request.url
    close_diff_tab(page)
    poll(lambda: failed, 15, "closing the tab cancelled the diff request")

    page.unroute("**/mlfactory/history/diff?**")
    message = "Comparing these versions of analysis.ipynb took longer than 30 s and was stopped."
    page.route(
        "**/mlfactory/history/diff?**",
        lambda route: route.fulfill(
            status=504, content_type="application/json", body=json.dumps({"message": message})
        ),
    )
    compare()
    alert = diff.locator('[role="alert"]')
    alert.wait_for(timeout=10_000)
    assert message in alert.inner_text() and "closer together" in alert.inner_text()
    assert diff.locator(".jp-Spinner").count() == 0
    close_diff_tab(page)

    # a diff that does not fit its notebook is said on the page, not only in the console
    base = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell("a = 1\n", id="c")])
    beyond = {"op": "patch", "key": 7, "diff": [{"op": "addrange", "key": 0, "valuelist": "x"}]}
    unreadable = [{"op": "patch", "key": "cells", "diff": [{"op": "patch", "key": 0, "diff": [
        {"op": "patch", "key": "source", "diff": [beyond]}]}]}]  # fmt: skip
    page.unroute("**/mlfactory/history/diff?**")
    page.route(
        "**/mlfactory/history/diff?**",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"base": base, "diff": unreadable, "from": "a" * 40, "to": "working"}),
        ),
    )
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    compare()
    alert = diff.locator('[data-testid="mlfactory-history-diff-error"]')
    alert.wait_for(timeout=10_000)
    assert "could not be shown side by side" in alert.inner_text()
    assert errors == []
    close_diff_tab(page)

    # cells without ids (notebooks before nbformat 4.5) are numbered too
    old = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("a = 1"), nbformat.v4.new_code_cell("b = 2")]
    )
    old.nbformat_minor = 4
    for cell in old.cells:
        del cell["id"]
    add_zero = {"op": "addrange", "key": 5, "valuelist": "0"}
    second_line = {"op": "patch", "key": 0, "diff": [add_zero]}
    patched = [{"op": "patch", "key": "cells", "diff": [{"op": "patch", "key": 1, "diff": [
        {"op": "patch", "key": "source", "diff": [second_line]}]}]}]  # fmt: skip
    page.unroute("**/mlfactory/history/diff?**")
    page.route(
        "**/mlfactory/history/diff?**",
        lambda route: route.fulfill(
            status=200,
            content_type="application/json",
            body=json.dumps({"base": old, "diff": patched, "from": "b" * 40, "to": "working"}),
        ),
    )
    compare()
    changed = diff.locator(".jp-Cell-diff:not(.jp-Diff-unchanged)")
    changed.first.wait_for(timeout=10_000)
    poll(lambda: "b = 20" in changed.first.inner_text(), 10, "the patched cell drawn")
    assert changed.first.inner_text().count("Cell 2") == 2  # older and newer side
    assert "Cell ID" not in diff.inner_text() and errors == []


# A form feed (a page break in Python source) ends a line for Python's str.splitlines but
# not for the browser: the diff's line numbers pointed one line on, and nbdime stopped
# drawing ("Key out of range", "Invalid line number 15 in 14-line document").
PAGED_OLD = "a = 1\x0c\nb = 2\nc = 3\nd = 4"
PAGED_NEW = "a = 1\x0c\nb = 2\nc = 30\nd = 4\ne = 5"


def test_diff_speaks_in_cell_numbers_names_and_times(lab, page):
    """Two versions compared: the diff names cells "Cell N" and versions by message and
    time, with no cell id, hash or e-mail in sight until Details is opened; a cell with a
    form feed is drawn whole and nothing is logged as drawn in part."""
    ids = [str(uuid.uuid4()) for _ in range(3)]

    def version(source: str, message: str) -> dict:
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}  # fmt: skip
        nb.cells = [
            nbformat.v4.new_markdown_cell("# Paged", id=ids[0]),
            nbformat.v4.new_code_cell("x = 0", id=ids[1]),
            nbformat.v4.new_code_cell(source, id=ids[2]),
        ]
        nbformat.write(nb, lab.root / NOTEBOOK)
        answer = page.request.post(
            f"{lab.url}/mlfactory/history/versions",
            headers={"Authorization": f"token {lab.token}"},
            data={"path": NOTEBOOK, "message": message},
        )
        assert answer.ok, answer.text()
        return answer.json()["version"]

    init = page.request.post(
        f"{lab.url}/mlfactory/history/init", headers={"Authorization": f"token {lab.token}"}
    )
    assert init.ok, init.text()
    first = version(PAGED_OLD, "first")
    second = version(PAGED_NEW, "second")
    logs: list[str] = []
    page.on("console", lambda m: logs.append(m.text))
    page.on("pageerror", lambda e: logs.append(f"pageerror: {e}"))
    open_notebook(page, lab)
    page.locator('.jp-SideBar [data-id="mlfactory-history"]').click()
    panel = page.locator('[data-testid="mlfactory-history"]')
    expect_versions(panel, 2)

    # the list: a name and a relative time; the id, e-mail and ISO time only in Details
    rows = panel.locator("li.mlfactory-HistoryVersion")
    main = panel.inner_text()
    for hidden in (first["short"], second["short"], "lab@example.com", first["time"], "Branch"):
        assert hidden not in main
    assert "Lab Tester" in rows.nth(0).inner_text()
    time = rows.nth(0).locator("time")
    assert re.search(r"(now|second|minute)", time.inner_text())
    assert time.get_attribute("title")  # the exact time on hover
    details = rows.nth(0).locator('[data-testid="mlfactory-history-version-details"]')
    details.locator("summary").click()
    assert second["id"] in details.inner_text() and "lab@example.com" in details.inner_text()

    for i in (0, 1):
        rows.nth(i).locator("input[type=checkbox]").check()
    panel.locator('[data-testid="mlfactory-history-compare"]').click()
    diff = page.locator('[data-testid="mlfactory-history-diff"]')
    changed = diff.locator(".jp-Cell-diff:not(.jp-Diff-unchanged)")
    changed.first.wait_for(timeout=30_000)
    page.wait_for_function(
        "() => document.querySelector('[data-testid=mlfactory-history-diff] .jp-Cell-diff"
        ":not(.jp-Diff-unchanged) .cm-content')",
        timeout=15_000,
    )
    text = diff.inner_text()
    assert "Cell 3" in changed.first.inner_text()
    assert "c = 30" in changed.first.inner_text() and "e = 5" in changed.first.inner_text()
    assert "Cell ID" not in text and not any(i in text for i in ids)
    for hidden in (first["id"], first["short"], second["short"], "lab@example.com"):
        assert hidden not in text
    assert "first" in text and "second" in text
    assert diff.locator('[data-testid="mlfactory-history-diff-partial"]').count() == 0
    assert not [line for line in logs if re.search(
        r"drawn|RangeError|out of range|Invalid line|pageerror", line
    )], logs  # fmt: skip

    diff_details = diff.locator('[data-testid="mlfactory-history-diff-details"]')
    diff_details.locator("summary").click()
    assert first["id"] in diff_details.inner_text() and second["id"] in diff_details.inner_text()
    dismiss_news(page)
    screenshot(page, "history-diff-numbered")
