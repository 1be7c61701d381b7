"""Pairing with jupytext: explicit formats, and jupytext's own contents manager kept from
executing .py configuration files."""

from __future__ import annotations

import asyncio

import nbformat
import pytest
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class
from mlfactory.server.history import pairing

from .conftest import write_notebook


def test_formats_and_paths():
    assert pairing.formats("py:percent") == "ipynb,py:percent"
    assert pairing.formats("none") is None
    with pytest.raises(ValueError):
        pairing.formats("py:percent,sh")
    assert pairing.paired_path("a/b.ipynb", "md") == "a/b.md"
    assert pairing.paired_path("b.ipynb", "py:light") == "b.py"
    assert pairing.paired_path("b.ipynb", "none") is None


@pytest.mark.parametrize(
    ("name", "python"),
    [
        (".jupytext.py", True),
        ("jupytext.py", True),
        ("/w/jupytext.cfg", True),
        ("/w/jupytext.toml", False),
        ("/w/.jupytext", False),
        ("/w/pyproject.toml", False),
        ("/w/jupytext.yaml", False),
        (None, False),
    ],
)
def test_is_python_config(name, python):
    assert pairing.is_python_config(name) is python


def _jupytext_cm(root, **kw):
    return build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(
        root_dir=str(root), **kw
    )


async def test_jupytext_manager_never_runs_python_configs(root, tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.delenv("XDG_CONFIG_HOME", raising=False)
    marker = tmp_path / "config-ran"
    (root / ".jupytext.py").write_text(
        f"open({str(marker)!r}, 'w').write('ran')\nc.formats = 'ipynb,md'\n"
    )
    cm = _jupytext_cm(root, allow_hidden=True)  # hidden configs are read only then
    assert pairing.guard_contents_manager(cm) is True
    assert pairing.guard_contents_manager(cm) is True  # once only
    pairing.apply_to_contents_manager(cm, "py:percent")
    path = write_notebook(root, "a.ipynb", ["x = 1"])
    model = await cm.get("a.ipynb")
    await cm.save(model, "a.ipynb")
    assert not marker.exists()
    assert (root / "a.py").is_file() and not (root / "a.md").exists()
    assert "# %%\nx = 1" in (root / "a.py").read_text()
    assert path.is_file()


async def test_unguarded_manager_would_run_it(root, tmp_path, monkeypatch):
    """The scenario the guard exists for (jupytext's own behaviour, checked once)."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    marker = tmp_path / "config-ran"
    (root / ".jupytext.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    cm = _jupytext_cm(root, allow_hidden=True)
    write_notebook(root, "a.ipynb", ["x = 1"])
    await cm.save(await cm.get("a.ipynb"), "a.ipynb")
    assert marker.exists()


async def test_pairing_setting_reaches_jupytext(root):
    cm = _jupytext_cm(root)
    pairing.apply_to_contents_manager(cm, "md")
    write_notebook(root, "a.ipynb", ["x = 1"])
    await cm.save(await cm.get("a.ipynb"), "a.ipynb")
    assert (root / "a.md").is_file()
    pairing.apply_to_contents_manager(cm, "none")
    write_notebook(root, "b.ipynb", ["x = 1"])
    await cm.save(await cm.get("b.ipynb"), "b.ipynb")
    assert not (root / "b.md").exists() and not (root / "b.py").exists()


def test_plain_manager_is_left_alone(root):
    cm = AsyncLargeFileManager(root_dir=str(root))
    assert pairing.guard_contents_manager(cm) is False
    pairing.apply_to_contents_manager(cm, "md")
    assert not hasattr(cm, "formats")


def test_text_uses_the_explicit_format(root):
    path = write_notebook(root, "a.ipynb", ["x = 1"])
    assert pairing.text(path.read_bytes(), "py:light").strip().endswith("x = 1")
    assert "```python\nx = 1\n```" in pairing.text(path.read_bytes(), "md")


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
async def test_a_read_during_a_paired_save_waits_for_its_end(root, serialized):
    cm = build_async_jupytext_contents_manager_class(PairWrittenLater)(root_dir=str(root))
    cm.gate, cm.between = asyncio.Event(), asyncio.Event()
    pairing.apply_to_contents_manager(cm, "py:percent")
    if serialized:
        assert pairing.serialize_notebook_io(cm) is True
        assert pairing.serialize_notebook_io(cm) is True  # once only
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


def test_a_synchronous_manager_is_left_alone(root):
    from jupyter_server.services.contents.filemanager import FileContentsManager

    assert pairing.serialize_notebook_io(FileContentsManager(root_dir=str(root))) is False
