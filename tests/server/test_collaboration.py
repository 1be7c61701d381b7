"""Real-time collaboration on a real jupyter server with jupyter-server-ydoc: its state lives in
Jupyter's data folder (never in the workspace), the platform's switch turns it off through
jupyter-server-ydoc's own trait, and History's restore reaches an open room at once."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import nbformat
import pytest
from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
from mlfactory.server import collaboration
from nbformat.v4 import new_code_cell, new_notebook

from ..history.conftest import git
from .conftest import NamedTokenIdentityProvider


@pytest.fixture
def jp_server_config():
    return {
        "ServerApp": {
            "jpserver_extensions": {
                "mlfactory.server": True,
                "jupyter_server_ydoc": True,
                "jupyter_server_fileid": True,
                "jupyter_server_terminals": False,
            },
            "allow_unauthenticated_access": False,
            "identity_provider_class": NamedTokenIdentityProvider,
        },
        # only an explicit reload (or a save) may bring disk changes into a room here
        "YDocExtension": {"file_poll_interval": 0},
    }


def _ydoc(serverapp):
    (app,) = serverapp.extension_manager.extension_apps[collaboration.YDOC_EXTENSION]
    return app


def test_state_paths_are_per_server_and_safe(tmp_path: Path):
    a = collaboration.state_paths(tmp_path)
    b = collaboration.state_paths(tmp_path, "gpu/../x")
    assert a["ystore"] == str(tmp_path / "mlfactory" / "collaboration" / "ystore-default.db")
    assert Path(b["ystore"]).parent == Path(a["ystore"]).parent  # no way out of the folder
    assert a["ystore"] != b["ystore"] and a["sessions"] != b["sessions"]


@pytest.mark.parametrize(
    ("value", "on"), [(None, True), ("1", True), ("0", False), ("false", False), ("yes", True)]
)
def test_realtime_from_env(value, on):
    assert (
        collaboration.realtime_from_env({} if value is None else {"MLFACTORY_REALTIME": value})
        is on
    )


@pytest.mark.asyncio
async def test_collaboration_state_is_kept_out_of_the_workspace(jp_serverapp, jp_data_dir):
    from jupyter_server_ydoc.stores import SQLiteYStore

    ydoc = _ydoc(jp_serverapp)
    expected = collaboration.state_paths(jp_data_dir)
    # the store class is built from the extension's config when a room opens
    assert SQLiteYStore(path="probe", config=ydoc.config).db_path == expected["ystore"]
    assert ydoc.session_store_path == expected["sessions"]
    assert not Path(expected["ystore"]).is_relative_to(jp_serverapp.root_dir)
    assert jp_serverapp.web_app.settings["page_config_data"]["disableRTC"] is False


@pytest.fixture
def realtime_off(monkeypatch):
    monkeypatch.setenv("MLFACTORY_REALTIME", "0")


@pytest.fixture
def admin_store_path(jp_server_config, tmp_path):
    jp_server_config["SQLiteYStore"] = {"db_path": str(tmp_path / "admin.db")}
    return str(tmp_path / "admin.db")


@pytest.mark.asyncio
async def test_the_switch_sets_ydocs_own_trait(realtime_off, jp_serverapp):
    assert _ydoc(jp_serverapp).disable_rtc is True
    assert jp_serverapp.web_app.settings["page_config_data"]["disableRTC"] is True


@pytest.mark.asyncio
async def test_an_admins_store_path_wins(admin_store_path, jp_serverapp):
    from jupyter_server_ydoc.stores import SQLiteYStore

    assert SQLiteYStore(path="probe", config=_ydoc(jp_serverapp).config).db_path == admin_store_path


def _notebook(source: str) -> str:
    # a kernel's metadata, as every notebook JupyterLab has saved carries (a room's
    # document fills in empty ones where a notebook has none)
    metadata = {
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"},
        "language_info": {"name": "python"},
    }
    return nbformat.writes(new_notebook(cells=[new_code_cell(source, id="c1")], metadata=metadata))


def _source(ydoc) -> str:
    return "".join(ydoc.get()["cells"][0]["source"])


@pytest.mark.asyncio
async def test_a_restore_reaches_the_open_room_at_once(
    jp_serverapp, jp_fetch, jp_root_dir, tmp_path, monkeypatch
):
    # jupyter-server-ydoc's get_document (used here to hold the room open, not by the
    # product) builds its store without the app's config: its .jupyter_ystore.db goes to
    # the working directory, which would be the repository
    monkeypatch.chdir(tmp_path)
    (jp_root_dir / "nb.ipynb").write_text(_notebook("x = 'first'"))
    r = await jp_fetch("mlfactory", "history", "init", method="POST", body="{}")
    assert r.code in (200, 201)
    r = await jp_fetch(
        "mlfactory", "history", "versions", method="POST",
        body=json.dumps({"path": "nb.ipynb", "message": "first"}),
    )  # fmt: skip
    first = json.loads(r.body)["version"]["id"]
    (jp_root_dir / "nb.ipynb").write_text(_notebook("x = 'second'"))

    ydoc = _ydoc(jp_serverapp)
    room = await ydoc.get_document(
        path="nb.ipynb", content_type="notebook", file_format="json", copy=False, create=True
    )
    assert "second" in _source(room)

    r = await jp_fetch(
        "mlfactory", "history", "restore", method="POST",
        body=json.dumps({"path": "nb.ipynb", "version": first}),
    )  # fmt: skip
    assert r.code == 201
    # no poll runs (file_poll_interval 0): only the restore can have done this
    assert "first" in _source(room)
    # as the room's own load of the file would have it: its watcher finds nothing to redo
    # (it replaced every cell again a second later, taking a cell added meanwhile with it)
    on_disk = await jp_serverapp.contents_manager.get("nb.ipynb")
    assert room.get() == on_disk["content"]


class RestoreSignals(AsyncLargeFileManager):
    """A contents manager that says when a save has written the notebook ``x = 'first'``."""

    wrote_first: asyncio.Event

    async def save(self, model, path=""):
        saved = await super().save(model, path)
        if "'first'" in str(model.get("content", {}).get("cells", [{}])[0].get("source")):
            self.wrote_first.set()
        return saved


@pytest.fixture
def quick_room_saves(jp_server_config):
    jp_server_config["ServerApp"]["contents_manager_class"] = RestoreSignals
    jp_server_config["YDocExtension"]["document_save_delay"] = 0.05


async def _version(jp_fetch, message: str) -> str:
    r = await jp_fetch(
        "mlfactory", "history", "versions", method="POST",
        body=json.dumps({"path": "nb.ipynb", "message": message}),
    )  # fmt: skip
    return json.loads(r.body)["version"]["id"]


async def test_a_room_save_under_way_does_not_undo_a_restore(
    quick_room_saves, jp_serverapp, jp_fetch, jp_root_dir, tmp_path, monkeypatch
):
    """The room's save of an edit had checked the file and was waiting to write when the
    restore wrote the file: it wrote the edit back before the version was read, and the
    restore committed the edit (or answered 409 "Nothing changed") while the room kept it."""
    monkeypatch.chdir(tmp_path)  # see test_a_restore_reaches_the_open_room_at_once
    (jp_root_dir / "nb.ipynb").write_text(_notebook("x = 'first'"))
    await jp_fetch("mlfactory", "history", "init", method="POST", body="{}")
    first = await _version(jp_fetch, "first")
    (jp_root_dir / "nb.ipynb").write_text(_notebook("x = 'second'"))
    await _version(jp_fetch, "second")
    room = await _ydoc(jp_serverapp).get_document(
        path="nb.ipynb", content_type="notebook", file_format="json", copy=False, create=True
    )
    cm = jp_serverapp.contents_manager
    cm.wrote_first = asyncio.Event()
    room_save_waits, room_save_wrote = asyncio.Event(), asyncio.Event()
    hardened = cm.save

    async def hold_the_rooms_save(model, path=""):
        cm.save = hardened  # the room's save only: it waits until the restore has written
        room_save_waits.set()
        await cm.wrote_first.wait()
        try:
            return await hardened(model, path)
        finally:
            room_save_wrote.set()

    cm.save = hold_the_rooms_save
    await room.aset(nbformat.reads(_notebook("x = 'edited'"), as_version=4))
    await asyncio.wait_for(room_save_waits.wait(), 30)  # past its check of the file's time

    r = await jp_fetch(
        "mlfactory", "history", "restore", method="POST",
        body=json.dumps({"path": "nb.ipynb", "version": first}),
    )  # fmt: skip
    assert r.code == 201
    restored = json.loads(r.body)["version"]["id"]
    assert "'first'" in git(jp_root_dir, "show", f"{restored}:nb.ipynb")
    assert "'first'" in _source(room)
    # the held save wrote the edit after the version was taken; the room's next save (its
    # document is the restore) writes the restore back
    await asyncio.wait_for(room_save_wrote.wait(), 30)
    cm.wrote_first.clear()
    while "'first'" not in (jp_root_dir / "nb.ipynb").read_text():
        await asyncio.wait_for(cm.wrote_first.wait(), 30)
        cm.wrote_first.clear()
    assert "'first'" in git(jp_root_dir, "show", "HEAD:nb.ipynb")
    assert room.get() == (await cm.get("nb.ipynb"))["content"]


def test_the_doorkeeper_sees_collaboration_rooms():
    """workspace_shares.Doorkeeper tracks every authenticated tornado WebSocketHandler; the
    rooms (documents and the global awareness) come through jupyter-server-ydoc's handler."""
    from jupyter_server_ydoc.handlers import YDocWebSocketHandler
    from tornado.websocket import WebSocketHandler

    assert issubclass(YDocWebSocketHandler, WebSocketHandler)


class SaveHeldOpen(AsyncLargeFileManager):
    """A contents manager whose next save waits for the test's ``gate``: the room's save
    under way when a newer change interrupts it."""

    gate: asyncio.Event
    started: asyncio.Event

    async def save(self, model, path=""):
        self.started.set()
        await self.gate.wait()
        return await super().save(model, path)


async def _interrupted_save(tmp_path: Path, maybe_save_content):
    """Run jupyter-server-ydoc's real FileLoader through a save that a newer change cancels
    after the write began; what it answers, and the file's hash on disk afterwards."""
    from jupyter_server_fileid.manager import ArbitraryFileIdManager
    from jupyter_server_ydoc.loaders import FileLoader

    cm = SaveHeldOpen(root_dir=str(tmp_path))
    cm.gate, cm.started = asyncio.Event(), asyncio.Event()
    cm.gate.set()
    await cm.save(
        {"type": "notebook", "content": new_notebook(cells=[new_code_cell("1")])}, "a.ipynb"
    )
    ids = ArbitraryFileIdManager(root_dir=str(tmp_path), db_path=str(tmp_path / "ids.db"))
    loader = FileLoader(ids.index("a.ipynb"), ids, cm, poll_interval=None)
    await loader.load_content("json", "notebook")
    cm.gate.clear()
    change = new_notebook(cells=[new_code_cell("2")])
    model = {"format": "json", "type": "notebook", "content": change}
    task = asyncio.create_task(maybe_save_content(loader, model))
    await asyncio.wait_for(cm.started.wait(), 30)
    task.cancel()  # the room cancels its save task when a newer change arrives
    cm.gate.set()
    answer = await task  # the loader swallows the cancel and waits for the shielded save
    on_disk = await cm.get("a.ipynb", content=False, require_hash=True)
    assert nbformat.read(tmp_path / "a.ipynb", as_version=4).cells[0].source == "2"
    return answer, on_disk["hash"]


async def test_upstream_forgets_the_hash_of_an_interrupted_save(tmp_path: Path):
    """jupyter-server-ydoc 3.0 answers None for a save that finished after its task was
    cancelled, so the room never tells the pages the new hash. When this fails, upstream
    fixed it: drop ``collaboration.keep_the_hash_of_interrupted_saves``."""
    from jupyter_server_ydoc.loaders import FileLoader

    upstream = getattr(FileLoader.maybe_save_content, "__wrapped__", None)
    upstream = upstream or FileLoader.maybe_save_content
    answer, _ = await _interrupted_save(tmp_path, upstream)
    assert answer is None


async def test_an_interrupted_save_still_gives_the_room_its_hash(tmp_path: Path):
    from jupyter_server_ydoc.loaders import FileLoader

    assert collaboration.keep_the_hash_of_interrupted_saves() is True
    assert collaboration.keep_the_hash_of_interrupted_saves() is True  # once only
    answer, disk_hash = await _interrupted_save(tmp_path, FileLoader.maybe_save_content)
    assert answer is not None and answer["hash"] == disk_hash
    assert answer["path"] == "a.ipynb"


# --- presence: a newcomer learns who is already in the room -----------------------------


def _awareness_of(user: str):
    """A client's awareness, as JupyterLab's provider keeps it, naming ``user``."""
    from pycrdt import Awareness, Doc

    awareness = Awareness(Doc())
    awareness.set_local_state({"user": {"username": user}})
    return awareness


def _awareness_message(awareness) -> bytes:
    from pycrdt import create_awareness_message

    return create_awareness_message(awareness.encode_awareness_update([awareness.client_id]))


def _states_in(message: bytes) -> dict[int, dict]:
    """The awareness states an AWARENESS message carries (empty for any other message)."""
    from pycrdt import Awareness, Doc, YMessageType, read_message

    if message[0] != YMessageType.AWARENESS:
        return {}
    view = Awareness(Doc())
    view.apply_awareness_update(read_message(message[1:]), "remote")
    return {k: v for k, v in view.states.items() if k != view.client_id}


class Pipe:
    """One client's connection to a room, in memory: what the room reads and what it sends."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.to_room: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.to_client: asyncio.Queue[bytes] = asyncio.Queue()

    async def send(self, message: bytes) -> None:
        await self.to_client.put(message)

    def __aiter__(self) -> Pipe:
        return self

    async def __anext__(self) -> bytes:
        message = await self.to_room.get()
        if message is None:
            raise StopAsyncIteration
        return message

    async def recv(self) -> bytes:
        return await self.__anext__()

    async def until_echo_of(self, awareness) -> list[bytes]:
        """What the room sends this client up to the room's echo of ``awareness``'s state
        (the room sends every awareness message back to its sender too), echo included."""
        seen = []
        while True:
            message = await asyncio.wait_for(self.to_client.get(), 30)
            seen.append(message)
            if awareness.client_id in _states_in(message):
                return seen


async def test_upstream_keeps_who_is_here_from_a_newcomer():
    """pycrdt-websocket 0.16's room sends a newcomer the document but nobody's awareness:
    alice's state, which the room holds, is not among what bob receives before the room
    echoes his own. When this fails, upstream fixed it: drop
    ``collaboration.tell_newcomers_who_is_here``."""
    from pycrdt.websocket import YRoom

    serve = getattr(YRoom.serve, "__wrapped__", YRoom.serve)
    alice, bob = _awareness_of("alice"), _awareness_of("bob")
    async with YRoom() as room:
        a, b = Pipe("a"), Pipe("b")
        tasks = [asyncio.create_task(serve(room, a))]
        await a.to_room.put(_awareness_message(alice))
        await a.until_echo_of(alice)
        assert alice.client_id in room.awareness.states  # the room knows she is here

        tasks.append(asyncio.create_task(serve(room, b)))
        await b.to_room.put(_awareness_message(bob))
        received = await b.until_echo_of(bob)
        assert not any(alice.client_id in _states_in(m) for m in received)
        for pipe in (a, b):
            await pipe.to_room.put(None)
        await asyncio.gather(*tasks)


@pytest.fixture
def upstream_rooms(monkeypatch):
    """pycrdt-websocket's own ``YRoom.serve`` until the server starts: whatever an earlier
    test applied, only this server's start can have put the fix back."""
    from pycrdt.websocket import YRoom

    monkeypatch.setattr(YRoom, "serve", getattr(YRoom.serve, "__wrapped__", YRoom.serve))


async def test_a_newcomer_is_told_at_once_who_is_here(upstream_rooms, jp_serverapp, jp_ws_fetch):
    """Through a real server's global awareness room (JupyterLab's Collaborators panel):
    the first thing bob's connection receives is alice's state, before anyone moves."""
    room = ("api", "collaboration", "room", collaboration.AWARENESS_ROOM)
    alice = _awareness_of("alice")
    a = await jp_ws_fetch(*room)
    await a.write_message(_awareness_message(alice), binary=True)
    while alice.client_id not in _states_in(await asyncio.wait_for(a.read_message(), 30)):
        pass  # her echo: the room has taken her state

    b = await jp_ws_fetch(*room)
    first = await asyncio.wait_for(b.read_message(), 30)
    assert _states_in(first) == {alice.client_id: {"user": {"username": "alice"}}}
    a.close()
    b.close()
    assert collaboration.tell_newcomers_who_is_here() is True  # once only
