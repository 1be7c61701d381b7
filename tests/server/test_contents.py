"""The server's contents manager against the races of saving in place: reads wait for a
save of the same notebook, and a listing that loses an entry to a rename is read again.
On jupyter_server's real managers (and jupytext's), with the moment between two writes held
open by the test."""

from __future__ import annotations

import asyncio

import nbformat
import pytest
from jupyter_server.services.contents.filemanager import FileContentsManager
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class
from mlfactory.server import contents
from mlfactory.server.history import pairing
from tornado.web import HTTPError


class PairWrittenLater(AsyncLargeFileManager):
    """Holds each text pair's write until the test opens ``gate``: the moment between
    jupytext's two writes of one save, made to last."""

    gate: asyncio.Event
    between: asyncio.Event

    async def save(self, model, path=""):
        if path.endswith(".py"):
            self.between.set()  # the .ipynb is written, its pair not yet
            await self.gate.wait()
        return await super().save(model, path)


def _paired_notebook(sources: list[str]) -> dict:
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    return {"type": "notebook", "content": nb}


@pytest.mark.parametrize("serialized", [True, False])
async def test_a_read_during_a_paired_save_waits_for_its_end(tmp_path, serialized):
    cm = build_async_jupytext_contents_manager_class(PairWrittenLater)(root_dir=str(tmp_path))
    cm.gate, cm.between = asyncio.Event(), asyncio.Event()
    pairing.apply_to_contents_manager(cm, "py:percent")
    if serialized:
        assert contents.serialize_notebook_io(cm) is True
        assert contents.serialize_notebook_io(cm) is True  # once only
    cm.gate.set()
    await cm.save(_paired_notebook(["x = 1"]), "live.ipynb")
    cm.gate.clear()
    cm.between.clear()
    saving = asyncio.create_task(cm.save(_paired_notebook(["x = 2"]), "live.ipynb"))
    await asyncio.wait_for(cm.between.wait(), 30)
    reading = asyncio.create_task(cm.get("live.ipynb"))
    hashing = asyncio.create_task(cm.get("live.ipynb", content=False, require_hash=True))
    listing = await cm.get("live.ipynb", content=False)  # metadata never waits
    assert listing["content"] is None
    # unserialized, the read ends during the save; serialized, it must still be waiting
    # (half a second lets an unserialized read finish its file reads in their threads)
    await asyncio.wait({reading, hashing}, timeout=None if not serialized else 0.5)
    assert reading.done() is not serialized and hashing.done() is not serialized
    cm.gate.set()
    await saving
    source = (await reading)["content"]["cells"][0]["source"]
    # unserialized, jupytext pairs the new .ipynb with the old .py: the edit is lost
    assert source == ("x = 2" if serialized else "x = 1")
    # and the hash, which JupyterLab compares before each save, matches neither state
    settled = await cm.get("live.ipynb", content=False, require_hash=True)
    assert ((await hashing)["hash"] == settled["hash"]) is serialized


def test_a_synchronous_manager_is_left_alone(tmp_path):
    cm = FileContentsManager(root_dir=str(tmp_path))
    assert contents.serialize_notebook_io(cm) is False
    assert contents.relist_vanished_entries(cm) is False


class EntryGoneWhileListed(AsyncLargeFileManager):
    """Removes ``gone.py`` just before the listing asks for its model, once: what a rename
    between jupyter_server's ``lstat`` of a name and its ``get`` does."""

    removed = False

    async def get(self, path, content=True, type=None, format=None, require_hash=False):
        if path.strip("/") == "gone.py" and not self.removed:
            self.removed = True
            (self.root_dir_path / "gone.py").unlink()
        return await super().get(path, content, type, format, require_hash)


def _listing_manager(tmp_path) -> EntryGoneWhileListed:
    (tmp_path / "gone.py").write_text("x = 1\n")
    (tmp_path / "kept.py").write_text("y = 2\n")
    cm = EntryGoneWhileListed(root_dir=str(tmp_path))
    cm.root_dir_path = tmp_path
    return cm


async def test_upstream_fails_a_listing_that_loses_an_entry(tmp_path):
    """jupyter_server's own behaviour, pinned: when this fails, it lists what is left and
    ``relist_vanished_entries`` can go."""
    cm = _listing_manager(tmp_path)
    with pytest.raises(HTTPError) as e:
        await cm.get("", content=True)
    assert e.value.status_code == 404


async def test_a_listing_that_loses_an_entry_is_read_again(tmp_path):
    cm = _listing_manager(tmp_path)
    assert contents.relist_vanished_entries(cm) is True
    assert contents.relist_vanished_entries(cm) is True  # once only
    listing = await cm.get("", content=True)
    assert [e["name"] for e in listing["content"]] == ["kept.py"]
    # a missing folder or file is still a 404, at once
    with pytest.raises(HTTPError) as e:
        await cm.get("nowhere", content=True)
    assert e.value.status_code == 404
    with pytest.raises(HTTPError):
        await cm.get("gone.py", content=True)
