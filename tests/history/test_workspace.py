"""Versions, diffs, restores, pairing and automatic versions on a real git repository."""

from __future__ import annotations

import asyncio
import json
import stat

import nbformat
import pytest
from mlfactory.server.history.git import AUTOMATIC_TRAILER
from mlfactory.server.history.paths import Refused
from mlfactory.server.history.wording import human_date
from mlfactory.server.history.workspace import (
    SETTLE_TRIES,
    HistoryError,
    Settings,
    autosave_due,
    check_settings,
)

from .conftest import git, sources, write_notebook


async def test_first_version_creates_the_repository(workspace, root):
    write_notebook(root, "analysis.ipynb", ["x = 1", "print(x)"])
    assert (await workspace.status())["repository"] is False
    version = await workspace.save_version("analysis.ipynb", "First look")
    status = await workspace.status()
    assert status["repository"] is True and status["branch"] == "main"
    assert status["author"] == {"name": "Ada", "email": "ada@example.org"}
    assert version.message == "First look" and version.automatic is False
    assert version.author == "Ada" and version.time.endswith("Z") and len(version.id) == 40
    # the commit holds exactly the notebook and its text pair
    files = git(root, "show", "--name-only", "--format=", version.id).split()
    assert sorted(files) == ["analysis.ipynb", "analysis.py"]
    assert "# %%\nx = 1" in (root / "analysis.py").read_text()
    assert ".ipynb_checkpoints/" in (root / ".gitignore").read_text()
    assert (
        "*.ipynb diff=jupyternotebook merge=jupyternotebook"
        in (root / ".gitattributes").read_text()
    )
    config = git(root, "config", "--local", "--list")
    assert "merge.jupyternotebook.driver=" in config and "git-nbmergedriver" in config
    assert "diff.jupyternotebook.command=" in config and "git-nbdiffdriver" in config


async def test_a_shared_copy_says_so_in_its_first_version_only(workspace, root, clock):
    came = {"share_id": "a" * 16, "owner": "alice", "version": 2, "path": "w/q4.ipynb"}
    path = write_notebook(root, "q4 (shared by alice).ipynb", ["1"])
    nb = nbformat.read(path, as_version=4)
    nb.metadata["mlfactory"] = {"copied_from": came}
    nbformat.write(nb, path)
    await workspace.init()
    workspace.put_settings({"autosave_minutes": 10})
    workspace.on_save(model=None, os_path=str(path), contents_manager=None)
    await workspace.drain()
    (first,) = (await workspace.versions(path.name))["versions"]
    assert first["message"] == "Copy of “q4.ipynb” shared by alice (version 2)"
    assert first["automatic"] is True
    nb.cells[0].source = "2"
    nbformat.write(nb, path)
    second = await workspace.save_version(path.name, "Mine now")
    assert second.message == "Mine now"
    # a notebook that is no copy keeps its words
    write_notebook(root, "own.ipynb", ["1"])
    assert (await workspace.save_version("own.ipynb", "First")).message == "First"


async def test_init_is_idempotent_and_keeps_existing_files(workspace, root):
    (root / ".gitignore").write_text("mine/\n")
    (root / ".gitattributes").write_text("*.csv text")
    first = await workspace.init()
    second = await workspace.init()
    assert first == second and first["repository"] is True
    assert (root / ".gitignore").read_text() == "mine/\n"
    assert (root / ".gitattributes").read_text().splitlines() == [
        "*.csv text",
        "*.ipynb diff=jupyternotebook merge=jupyternotebook",
        ".gitignore merge=union",
        ".gitattributes merge=union",
    ]
    assert git(root, "rev-list", "--count", "HEAD").strip() == "1"


async def test_only_the_notebook_and_its_pair_are_committed(workspace, root):
    write_notebook(root, "a.ipynb", ["1"])
    await workspace.init()
    (root / "staged.txt").write_text("someone else's work")
    git(root, "add", "staged.txt")
    version = await workspace.save_version("a.ipynb", "mine")
    assert "staged.txt" not in git(root, "show", "--name-only", "--format=", version.id)
    # what jupyterlab-git staged stays staged
    assert "A  staged.txt" in git(root, "status", "--porcelain")


def finishing_save(path, content: bytes, after: int):
    """An injected sleep: the save under way writes ``content`` at the ``after``-th pause."""
    pauses: list[float] = []

    async def sleep(seconds: float) -> None:
        pauses.append(seconds)
        if len(pauses) == after:
            path.write_bytes(content)

    return sleep, pauses


async def test_a_version_taken_during_a_save_holds_the_whole_notebook(workspace, root):
    # jupyter_server saves in place (truncate, then write): a version must wait for the end
    path = write_notebook(root, "a.ipynb", ["x = 1"])
    await workspace.save_version("a.ipynb", "one")
    write_notebook(root, "a.ipynb", ["x = 2"])
    complete = path.read_bytes()
    path.write_bytes(complete[:0])  # the save has truncated the file...
    workspace.runner.sleep, pauses = finishing_save(path, complete, after=2)
    version = await workspace.save_version("a.ipynb", "two")
    assert len(pauses) == 2  # ...and ends while the version waits
    assert git(root, "show", f"{version.id}:a.ipynb").encode() == complete
    assert "x = 2" in git(root, "show", f"{version.id}:a.py")
    assert git(root, "status", "--porcelain") == ""
    # the working copy's diff waits the same way
    path.write_bytes(complete[: len(complete) // 2])
    workspace.runner.sleep, pauses = finishing_save(path, complete, after=1)
    assert (await workspace.diff("a.ipynb", None, None))["to"] == "working"
    assert len(pauses) == 1


async def test_a_notebook_cut_off_for_good_is_refused_and_kept(workspace, root):
    path = write_notebook(root, "a.ipynb", ["x = 1"])
    await workspace.save_version("a.ipynb", "one")
    path.write_text('{"cells": [', encoding="utf-8")
    workspace.runner.sleep, pauses = finishing_save(path, b"", after=-1)
    with pytest.raises(HistoryError) as e:
        await workspace.save_version("a.ipynb", "two")
    assert e.value.status == 409
    assert "a.ipynb is not a complete notebook on disk" in e.value.message
    assert len(pauses) == SETTLE_TRIES - 1
    assert git(root, "rev-list", "--count", "HEAD").strip() == "2"  # start + "one"
    assert path.read_text(encoding="utf-8") == '{"cells": ['


async def test_pinned_content_is_committed_not_what_the_file_holds_later(workspace, root):
    path = write_notebook(root, "a.ipynb", ["x = 1"])
    await workspace.init()
    read = path.read_bytes()
    write_notebook(root, "a.ipynb", ["x = 2"])  # a save after the version read the file
    sha = await workspace.repo.commit(
        ["a.ipynb"], "pinned", ("Ada", "a@x"), False, {"a.ipynb": read}
    )
    assert git(root, "show", f"{sha}:a.ipynb").encode() == read
    # the file keeps the later save, which shows as a change not yet versioned
    assert "x = 2" in path.read_text() and git(root, "status", "--porcelain") == " M a.ipynb\n"
    assert not list((root / ".git").glob("mlfactory-*"))  # no private index or scratch left


async def test_nothing_changed_is_409(workspace, root):
    write_notebook(root, "a.ipynb", ["1"])
    version = await workspace.save_version("a.ipynb", "one")
    with pytest.raises(HistoryError) as e:
        await workspace.save_version("a.ipynb", "again")
    assert e.value.status == 409 and "since the last version, “one”" in e.value.message
    assert version.short not in e.value.message


async def test_versions_newest_first_and_dirty(workspace, root):
    path = write_notebook(root, "sub/a.ipynb", ["1"])
    listed = await workspace.versions("sub/a.ipynb")
    assert listed == {"path": "sub/a.ipynb", "versions": [], "dirty": True}
    await workspace.save_version("sub/a.ipynb", "one")
    write_notebook(root, "sub/a.ipynb", ["2"])
    await workspace.save_version("sub/a.ipynb", "two\n\nwith a body")
    listed = await workspace.versions("sub/a.ipynb")
    assert [v["message"] for v in listed["versions"]] == ["two\n\nwith a body", "one"]
    assert listed["dirty"] is False
    path.write_text(path.read_text().replace('"2"', '"3"'))
    assert (await workspace.versions("sub/a.ipynb"))["dirty"] is True
    assert len((await workspace.versions("sub/a.ipynb", limit=1))["versions"]) == 1


async def test_versions_follow_renames(workspace, root):
    write_notebook(root, "old.ipynb", ["1"])
    await workspace.save_version("old.ipynb", "before the rename")
    git(root, "mv", "old.ipynb", "new.ipynb")
    git(root, "mv", "old.py", "new.py")
    git(root, "commit", "-qm", "rename")
    listed = await workspace.versions("new.ipynb")
    assert [v["message"] for v in listed["versions"]] == ["rename", "before the rename"]
    first = listed["versions"][1]["id"]
    diff = await workspace.diff("new.ipynb", first, "working")
    assert json.loads(diff["diff"]) == []


async def test_missing_notebook_is_404_and_bad_paths_400(workspace, root):
    with pytest.raises(HistoryError) as e:
        await workspace.versions("nope.ipynb")
    assert e.value.status == 404
    for bad in ["../x.ipynb", "/etc/x.ipynb", "a.py", "a%2F..%2Fb.ipynb", ".git/x.ipynb"]:
        with pytest.raises(HistoryError) as e:
            await workspace.versions(bad)
        assert e.value.status == 400, bad


async def test_messages_are_validated(workspace, root):
    write_notebook(root, "a.ipynb", ["1"])
    for bad in ["", "   ", "a\x00b", "x" * 5000, None, 3]:
        with pytest.raises(HistoryError) as e:
            await workspace.save_version("a.ipynb", bad)
        assert e.value.status == 400
    # option-like and shell-like messages are data
    version = await workspace.save_version("a.ipynb", "--amend `touch pwned` $(id)")
    assert version.message == "--amend `touch pwned` $(id)"
    assert not (root / "pwned").exists()


async def test_diff_against_working_and_between_versions(workspace, root):
    write_notebook(root, "a.ipynb", ["a = 1", "b = 2"])
    one = await workspace.save_version("a.ipynb", "one")
    write_notebook(root, "a.ipynb", ["a = 1", "b = 3", "c = 4"])
    result = await workspace.diff("a.ipynb", None, None)
    assert (result["from"], result["to"]) == (one.id, "working")
    base = json.loads(result["base"])
    assert [c["source"] for c in base["cells"]] == ["a = 1", "b = 2"]
    diff = json.loads(result["diff"])
    assert diff[0]["key"] == "cells"
    ops = {(d["op"], d["key"]) for d in diff[0]["diff"]}
    assert ("patch", 1) in ops or ("addrange", 1) in ops
    two = await workspace.save_version("a.ipynb", "two")
    between = await workspace.diff("a.ipynb", one.short, two.id)
    assert between["to"] == two.id and json.loads(between["diff"]) == diff
    same = await workspace.diff("a.ipynb", two.id, "working")
    assert json.loads(same["diff"]) == []


async def test_diff_refuses_unknown_and_foreign_versions(workspace, root):
    write_notebook(root, "a.ipynb", ["1"])
    write_notebook(root, "b.ipynb", ["1"])
    await workspace.save_version("a.ipynb", "a")
    b = await workspace.save_version("b.ipynb", "b")
    for bad, status in [("--output=/tmp/x", 400), ("HEAD~1", 400), ("deadbeef", 404), (b.id, 404)]:
        with pytest.raises(HistoryError) as e:
            await workspace.diff("a.ipynb", bad, None)
        assert e.value.status == status, bad


async def test_diff_timeout_is_504(workspace, root, monkeypatch):
    write_notebook(root, "a.ipynb", ["1"])
    await workspace.save_version("a.ipynb", "a")
    write_notebook(root, "a.ipynb", ["2"])
    workspace.diff_timeout = 0.001
    with pytest.raises(HistoryError) as e:
        await workspace.diff("a.ipynb", None, None)
    assert e.value.status == 504


async def test_restore_is_a_new_version_and_keeps_the_working_copy(workspace, root):
    path = write_notebook(root, "a.ipynb", ["v1"])
    one = await workspace.save_version("a.ipynb", "one")
    write_notebook(root, "a.ipynb", ["v2"])
    two = await workspace.save_version("a.ipynb", "two")
    write_notebook(root, "a.ipynb", ["unsaved work"])
    restored = await workspace.restore("a.ipynb", one.id)
    assert sources(path) == ["v1"]
    assert "# %%\nv1" in (root / "a.py").read_text()
    listed = (await workspace.versions("a.ipynb"))["versions"]
    assert [v["id"] for v in listed][2:] == [two.id, one.id]  # history kept, not rewritten
    assert listed[0]["id"] == restored.id
    assert restored.message == f"Restored “one” from {human_date(one.time)}"
    assert one.short not in restored.message and one.time not in restored.message
    assert listed[1]["automatic"] is True  # the unsaved work, kept as a version first
    assert listed[1]["message"].startswith("Changes kept before restoring “one” from ")
    assert "unsaved work" in git(root, "show", f"{listed[1]['id']}:a.ipynb")
    assert (await workspace.versions("a.ipynb"))["dirty"] is False


async def test_restore_through_a_jupytext_contents_manager(history, root, clock):
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class

    cm = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(root_dir=str(root))
    ws = history.workspace(str(root), lambda: cm)
    ws.apply_pairing()
    path = write_notebook(root, "a.ipynb", ["v1"])
    one = await ws.save_version("a.ipynb", "one")
    write_notebook(root, "a.ipynb", ["v2"])
    await ws.save_version("a.ipynb", "two")
    (root / "a.py").unlink()
    git(root, "commit", "-qam", "text pair gone")
    await ws.restore("a.ipynb", one.id)
    assert sources(path) == ["v1"]
    # jupytext's manager wrote the pair on the save; the version holds it
    assert "v1" in git(root, "show", "HEAD:a.py")


@pytest.mark.parametrize("serialized", [True, False])
async def test_a_version_and_a_paired_save_do_not_interleave(history, root, serialized):
    """A version reads the notebook, then writes its text pair when that differs. A room's
    save landing between the two (jupytext writes the .ipynb and the .py) made the version
    write the pair of the notebook it had read, older than both files: jupytext then reads
    the old inputs back, and the edit is gone. The version holds the manager's notebook lock
    (server_ext/contents.py) across both steps, so the save waits for it."""
    import threading

    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class
    from mlfactory.server import contents

    cm = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(root_dir=str(root))
    if serialized:
        contents.serialize_notebook_io(cm)
    ws = history.workspace(str(root), lambda: cm)
    ws.apply_pairing()
    v1 = {"type": "notebook", "content": nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("v1")])}  # fmt: skip
    await cm.save(v1, "a.ipynb")
    await ws.save_version("a.ipynb", "one")
    v1["content"].cells.append(nbformat.v4.new_code_cell("extra"))
    await cm.save(v1, "a.ipynb")

    read, resume = threading.Event(), threading.Event()
    write_pair = ws._write_pair

    def write_pair_later(*args):  # the version has read the notebook; hold it there
        read.set()
        resume.wait(30)
        return write_pair(*args)

    ws._write_pair = write_pair_later
    version = asyncio.create_task(ws.save_version("a.ipynb", "two"))
    await asyncio.to_thread(read.wait, 30)
    v2 = {"type": "notebook", "content": nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("v2")])}  # fmt: skip
    saving = asyncio.create_task(cm.save(v2, "a.ipynb"))
    # serialized, the save waits for the version (it cannot end before ``resume``)
    await asyncio.wait({saving}, timeout=0.5 if serialized else None)
    assert saving.done() is not serialized
    resume.set()
    await version
    await saving
    # unserialized, the pair the version wrote (of "v1", "extra") now wins over the save
    assert [c.source for c in (await cm.get("a.ipynb"))["content"].cells] == (
        ["v2"] if serialized else ["v1", "extra"]
    )


async def test_pairing_settings(workspace, root):
    assert workspace.settings() == Settings("py:percent", 0.0)
    assert workspace.put_settings({"pairing": "md"}).pairing == "md"
    saved = json.loads((root / ".mlfactory/history.json").read_text())
    assert saved == {"pairing": "md", "autosave_minutes": 0.0}
    write_notebook(root, "a.ipynb", ["print(1)"])
    version = await workspace.save_version("a.ipynb", "md")
    files = git(root, "show", "--name-only", "--format=", version.id).split()
    assert sorted(files) == ["a.ipynb", "a.md"]
    workspace.put_settings({"pairing": "none"})
    write_notebook(root, "b.ipynb", ["print(2)"])
    version = await workspace.save_version("b.ipynb", "none")
    assert git(root, "show", "--name-only", "--format=", version.id).split() == ["b.ipynb"]
    # settings are data, never code, and are not versioned
    assert ".mlfactory/" in (root / ".gitignore").read_text()


def test_check_settings_refuses_bad_values():
    current = Settings("py:percent", 0)
    for bad in [
        {"pairing": "py:percent; rm -rf"},
        {"pairing": "R:percent"},
        {"autosave_minutes": -1},
        {"autosave_minutes": "5"},
        {"autosave_minutes": True},
        {"autosave_minutes": 10**9},
        {"extra": 1},
        [],
    ]:
        with pytest.raises(Refused):
            check_settings(bad, current)
    assert check_settings({"autosave_minutes": 5}, current) == Settings("py:percent", 5.0)


@pytest.mark.parametrize("name", ["jupytext.py", ".jupytext.py"])
async def test_python_jupytext_config_refuses_pairing(workspace, root, name):
    marker = root.parent / f"executed-{name}"
    (root / "sub").mkdir()
    (root / name).write_text(f"open({str(marker)!r}, 'w').write('ran')\nformats = 'ipynb,md'\n")
    write_notebook(root, "sub/a.ipynb", ["1"])
    with pytest.raises(HistoryError) as e:
        await workspace.save_version("sub/a.ipynb", "one")
    assert e.value.status == 409 and name in e.value.message
    assert not marker.exists()
    # without pairing there is nothing to refuse
    workspace.put_settings({"pairing": "none"})
    await workspace.save_version("sub/a.ipynb", "one")
    assert not marker.exists()


async def test_python_jupytext_config_above_the_workspace_is_refused(workspace, root):
    (root.parent / ".jupytext.py").write_text("formats = 'ipynb,md'\n")
    write_notebook(root, "a.ipynb", ["1"])
    with pytest.raises(HistoryError) as e:
        await workspace.save_version("a.ipynb", "one")
    assert e.value.status == 409


def test_autosave_due():
    assert autosave_due(None, 100.0, 5) is True
    assert autosave_due(100.0, 100.0 + 299, 5) is False
    assert autosave_due(100.0, 100.0 + 300, 5) is True
    assert autosave_due(None, 100.0, 0) is False


async def test_automatic_versions_follow_the_interval(workspace, root, clock):
    path = write_notebook(root, "a.ipynb", ["1"])
    await workspace.save_version("a.ipynb", "manual")
    workspace.put_settings({"autosave_minutes": 10})

    async def save(source):
        nb = nbformat.read(path, as_version=4)
        nb.cells[0].source = source
        nbformat.write(nb, path)
        workspace.on_save(model=None, os_path=str(path), contents_manager=None)
        await workspace.drain()
        return (await workspace.versions("a.ipynb"))["versions"]

    assert len(await save("2")) == 1  # 0 minutes since the manual version
    clock.advance(9)
    assert len(await save("3")) == 1
    clock.advance(1)
    listed = await save("4")
    assert len(listed) == 2 and listed[0]["automatic"] is True
    assert listed[0]["message"] == "Automatic version"
    assert AUTOMATIC_TRAILER in git(root, "log", "-1", "--format=%B")
    clock.advance(3)
    assert len(await save("5")) == 2
    clock.advance(10)
    assert len(await save("5")) == 3  # "5" had not been versioned yet
    clock.advance(10)
    assert len(await save("5")) == 3  # nothing changed: no empty version


async def test_automatic_versions_off_and_never_failing_the_save(workspace, root, clock):
    path = write_notebook(root, "a.ipynb", ["1"])
    workspace.on_save(os_path=str(path))  # no repository: nothing
    await workspace.save_version("a.ipynb", "manual")
    clock.advance(60)
    write_notebook(root, "a.ipynb", ["2"])
    workspace.on_save(os_path=str(path))  # autosave off by default
    assert not workspace.pending
    workspace.put_settings({"autosave_minutes": 1})
    (root / ".jupytext.py").write_text("")  # makes the version fail
    workspace.on_save(os_path=str(path))
    await workspace.drain()
    assert len((await workspace.versions("a.ipynb"))["versions"]) == 1
    workspace.on_save(os_path="/elsewhere/x.ipynb")
    workspace.on_save(os_path=str(root / "a.py"))
    assert not workspace.pending


def test_settings_file_is_not_code(workspace, root):
    (root / ".mlfactory").mkdir()
    (root / ".mlfactory/history.json").write_text("__import__('os').system('x')")
    assert workspace.settings() == Settings("py:percent", 0.0)
    (root / ".mlfactory/history.json").write_text('{"pairing": "md", "autosave_minutes": 3}')
    assert workspace.settings() == Settings("md", 3.0)


def test_credentials_dir_private(history, root, tmp_path):
    from mlfactory.server.history.credentials import CredentialStore

    store = CredentialStore(tmp_path / "c", root)
    store.save("https://example.org/r.git", "ada", "s3cret")
    assert stat.S_IMODE(store.path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "c").stat().st_mode) == 0o700
    env = store.git_env()
    assert "s3cret" not in json.dumps(env)
    assert stat.S_IMODE(store.askpass.stat().st_mode) == 0o700
    assert store.forget() and not store.present and store.git_env() == {}


async def test_text_pair_symlinked_out_is_refused(workspace, root, tmp_path):
    outside = tmp_path / "outside.py"
    outside.write_text("keep me")
    write_notebook(root, "a.ipynb", ["1"])
    (root / "a.py").symlink_to(outside)
    with pytest.raises(HistoryError) as e:
        await workspace.save_version("a.ipynb", "one")
    assert e.value.status == 409 and outside.read_text() == "keep me"


async def test_settings_folder_symlinked_out_is_refused(workspace, root, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    (root / ".mlfactory").symlink_to(tmp_path / "elsewhere")
    with pytest.raises(Refused):
        workspace.put_settings({"pairing": "md"})
    assert not (tmp_path / "elsewhere" / "history.json").exists()


async def test_a_burst_of_room_saves_makes_one_automatic_version(workspace, root, clock):
    """Under real-time collaboration the room writes the notebook every
    YDocExtension.document_save_delay (1 s) while people type: each write calls the
    post-save hook with new content, and still only one version is made per autosave
    interval (not one per save)."""
    path = write_notebook(root, "a.ipynb", ["1"])
    await workspace.save_version("a.ipynb", "manual")
    workspace.put_settings({"autosave_minutes": 5})
    workspace.last_version.clear()  # a server just started: no version time in memory yet
    clock.advance(6)
    for n in range(20):  # twenty room saves a second apart, each with new text
        nb = nbformat.read(path, as_version=4)
        nb.cells[0].source = f"typed {n}"
        nbformat.write(nb, path)
        workspace.on_save(os_path=str(path))
        await workspace.drain()
        clock.advance(1 / 60)
    listed = (await workspace.versions("a.ipynb"))["versions"]
    assert [v["automatic"] for v in listed] == [True, False]
