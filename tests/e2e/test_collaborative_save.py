"""Ctrl+S during the collaboration room's own save, in a real JupyterLab with
jupyter-server-ydoc and jupytext pairing (the platform's defaults), driven by Chromium.

The room writes the notebook 1 s after the last edit and tells the pages the new hash only
afterwards; JupyterLab's pre-save check then found a hash it did not know and asked "File
Changed: overwrite or revert?" for a notebook nobody else had touched (CI's first-hour
failures; jupytext#1447). A notebook with 20 MB of output makes the room's save last long
enough to press Ctrl+S inside it every time.
"""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from .conftest import RealLab, screenshot
from .helpers import poll

pytestmark = pytest.mark.browser

NOTEBOOK = "big.ipynb"
ROOM_SAVE = f"YDocExtension] Saving file: {NOTEBOOK}"
RACE = f"Different hash found for {NOTEBOOK}"


def write_big_notebook(root: Path) -> None:
    output = nbformat.v4.new_output("stream", name="stdout", text=("x" * 200 + "\n") * 100_000)
    nb = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("a = 1", outputs=[output], id="big"),
            nbformat.v4.new_code_cell("b = 2", id="edited"),
        ],
        metadata={
            "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}
        },
    )
    nbformat.write(nb, root / NOTEBOOK)


def saved_source(root: Path) -> str:
    try:
        return "".join(json.loads((root / NOTEBOOK).read_text())["cells"][1]["source"])
    except ValueError:  # read while the room writes it
        return ""


def test_ctrl_s_during_the_rooms_save_asks_nothing_and_keeps_the_edit(lab: RealLab, page):
    write_big_notebook(lab.root)
    console: list[str] = []
    page.on("console", lambda m: console.append(m.text))
    page.goto(lab.lab_url(NOTEBOOK))
    cell = page.locator(".jp-Notebook .jp-Cell").nth(1)
    cell.wait_for(timeout=120_000)
    poll(lambda: "loaded from file big.ipynb" in lab.log(), 120, "the room loaded")
    dialog = page.locator(".jp-Dialog")
    for attempt in range(3):
        saves, edit = lab.log().count(ROOM_SAVE), f"c{attempt} = {attempt}"
        cell.locator(".cm-content").click()
        page.keyboard.press("ControlOrMeta+End")
        page.keyboard.insert_text(f"\n{edit}")
        # the room's autosave of that edit has begun (1 s later); it lasts a while
        poll(lambda s=saves: lab.log().count(ROOM_SAVE) > s, 60, "the room's save under way")
        page.keyboard.press("Control+s")
        # Ctrl+S asks the room for a save of its own (after the check); the dialog stops it
        poll(
            lambda s=saves: dialog.count() or lab.log().count(ROOM_SAVE) >= s + 2,
            60,
            "Ctrl+S's own save, or the dialog",
        )
        if dialog.count():
            screenshot(page, "collaborative-save-file-changed")
        assert not dialog.count(), dialog.first.inner_text()
        poll(lambda e=edit: e in saved_source(lab.root), 60, "the edit saved")
    # the check did meet the room's save (what used to open the dialog), and was answered
    assert any(RACE in m for m in console), console
    assert any("saving through the room" in m for m in console), console
