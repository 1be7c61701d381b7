"""Real-time collaboration (jupyter-collaboration) on mlfactory servers: whether it is on, and
where its machine state lives.

jupyter-server-ydoc keeps every document's updates in an SQLite "ystore" (by default
``.jupyter_ystore.db`` in the server's working directory, which is the workspace) and its
reconnect records in ``<root>/.jupyter/``. Neither is the user's work: they go beside
jupyter-server-fileid's database in Jupyter's data folder, out of the file browser and of the
History's repository. The switch is jupyter-server-ydoc's own ``disable_rtc``.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REALTIME_ENV = "MLFACTORY_REALTIME"
YDOC_EXTENSION = "jupyter_server_ydoc"
# the room of every document's awareness (who is here) shares the documents' handler
AWARENESS_ROOM = "JupyterLab:globalAwareness"

log = logging.getLogger(__name__)


def realtime_from_env(environ: Mapping[str, str]) -> bool:
    """MLFACTORY_REALTIME as the spawner writes it ("1"/"0"); unset means on."""
    return environ.get(REALTIME_ENV, "1").strip().lower() not in ("0", "false", "no", "off")


def state_paths(data_dir: str | Path, server_name: str = "") -> dict[str, str]:
    """Where this server's collaboration state goes: one ystore and one session record per
    server (a user's named servers share the data folder; SQLite across processes would make
    them wait on each other's locks)."""
    slug = re.sub(r"[^A-Za-z0-9_-]", "_", server_name) or "default"
    folder = Path(data_dir, "mlfactory", "collaboration")
    return {
        "ystore": str(folder / f"ystore-{slug}.db"),
        "sessions": str(folder / f"sessions-{slug}.json"),
    }


def configure(serverapp: Any, realtime: bool, paths: Mapping[str, str]) -> bool:
    """Apply the switch and the state folder to jupyter-server-ydoc, before it loads.

    Runs when mlfactory's extension is linked: jupyter-server links extensions in name order,
    so jupyter_server_ydoc is linked (its config read) but has not built its handlers or page
    config yet. What an admin configured for it explicitly wins over the folder; the switch
    only ever turns collaboration off. Returns False when jupyter-server-ydoc is not enabled.
    """
    apps = serverapp.extension_manager.extension_apps.get(YDOC_EXTENSION, ())
    if apps and realtime:
        keep_the_hash_of_interrupted_saves()
        tell_newcomers_who_is_here()
    for ydoc in apps:
        if not realtime:
            ydoc.disable_rtc = True
        store_config = ydoc.config.SQLiteYStore
        if "db_path" not in store_config:
            Path(paths["ystore"]).parent.mkdir(parents=True, exist_ok=True)
            # the store class is built later from this same config object
            store_config.db_path = paths["ystore"]
        if not ydoc.session_store_path:
            ydoc.session_store_path = paths["sessions"]
    return bool(apps)


async def put_in_open_room(serverapp: Any, path: str, notebook: Any) -> bool:
    """Make ``notebook`` (as the contents manager loads it) the content of the open
    collaborative document of ``path`` (an API path): History's restore, which has just
    written the file.

    The file alone is not enough: a room save of an edit that was already under way lands
    after the restore's write, and the room, which keeps the edit, would never load the
    restore (its own write is not a change from outside). In the room, the restore is what
    every later save of the room writes, and everyone editing the notebook sees it at once
    (the room's watcher waits up to ``YDocExtension.file_poll_interval``, never when that
    is 0). Uses jupyter-server-ydoc's ``get_document(copy=False)``, which opens no room
    and waits for no save of the room: it may run inside the notebook's lock. Returns
    whether a room took it; never raises (the file is written).
    """
    took = False
    for ydoc in serverapp.extension_manager.extension_apps.get(YDOC_EXTENSION, ()):
        try:
            document = await ydoc.get_document(
                path=path, content_type="notebook", file_format="json", copy=False
            )
            # the same test as the room's own reload: no needless replacement of every cell
            if document is not None and await document.aget() != notebook:
                await document.aset(notebook)
                took = True
        except Exception as e:  # the room's watcher still loads the file
            serverapp.log.warning("Could not restore %s in its collaboration room: %s", path, e)
    return took


async def reload_from_disk(serverapp: Any, path: str) -> bool:
    """Make the open collaborative document of ``path`` (an API path) take the file on disk
    now, as jupyter-server-ydoc's own watcher would at its next poll: for History's restore,
    after ``put_in_open_room``. The watcher replaces every cell when the room's document and
    the loaded file differ at all (a room fills in an empty ``language_info``, for one):
    done before the restore answers, that happens before anyone types into the restored
    notebook, not a second later over what they typed. Must not run inside the notebook's
    lock: it waits for a room save under way, which may be waiting for that lock. Returns
    whether a room was told; never raises (the restore itself has succeeded)."""
    told = False
    for ydoc in serverapp.extension_manager.extension_apps.get(YDOC_EXTENSION, ()):
        loaders = getattr(ydoc, "file_loaders", None)
        ids = serverapp.web_app.settings.get("file_id_manager")
        if loaders is None or ids is None:
            continue
        try:
            file_id = ids.get_id(path)
            if file_id is not None and file_id in loaders:
                await loaders[file_id].maybe_notify()
                told = True
        except Exception as e:  # the room's own poll still catches up
            serverapp.log.warning("Could not reload %s in its collaboration room: %s", path, e)
    return told


def keep_the_hash_of_interrupted_saves() -> bool:
    """Tell the room the hash of a save that a newer change interrupted but that finished.

    jupyter-server-ydoc 3.0's ``FileLoader.maybe_save_content`` shields the contents
    manager's save from cancellation (a half-written file would be worse) and, when the
    room's save task is cancelled by a newer change, lets the save finish but returns None.
    The room then never learns the file's new hash, so every page keeps the old one until
    the next save completes (``document_save_delay`` later, and only if no further change
    interrupts that one too). A Ctrl+S in that window is refused by JupyterLab's pre-save
    hash check with "File Changed" for a notebook nobody else touched; paired notebooks,
    whose save is two writes and a conversion long, hit it often (jupytext#1447).

    The loader's own ``_save_content`` (the shielded task) keeps its result on the loader;
    ``maybe_save_content`` answers with it when upstream would answer None. The loader's
    lock makes one save at a time per file, so the result is that call's. Applied once per
    process; False when jupyter-server-ydoc is not installed.
    ``tests/server/test_collaboration.py`` pins the upstream behaviour: once it returns the
    model itself, this can go.
    """
    try:
        from jupyter_server_ydoc.loaders import FileLoader
    except ImportError:
        return False
    if getattr(FileLoader.maybe_save_content, "_mlfactory", False):
        return True
    save_content = FileLoader._save_content
    maybe_save_content = FileLoader.maybe_save_content

    @functools.wraps(save_content)
    async def _save_content(self: Any, *args: Any, **kwargs: Any) -> Any:
        saved = await save_content(self, *args, **kwargs)
        self._mlfactory_saved = saved
        return saved

    @functools.wraps(maybe_save_content)
    async def _maybe_save_content(self: Any, model: dict[str, Any]) -> Any:
        # no reset on entry: a second call waiting on the lock would erase the first's
        try:
            saved = await maybe_save_content(self, model)
            return saved if saved is not None else getattr(self, "_mlfactory_saved", None)
        finally:
            self._mlfactory_saved = None

    _maybe_save_content._mlfactory = True  # type: ignore[attr-defined]
    FileLoader._save_content = _save_content  # type: ignore[method-assign]
    FileLoader.maybe_save_content = _maybe_save_content  # type: ignore[method-assign]
    return True


def tell_newcomers_who_is_here() -> bool:
    """Send a client that joins a room everyone's presence there at once.

    pycrdt-websocket 0.16's ``YRoom.serve`` answers a newcomer with the document only; the
    others' awareness (who is here, their cursors) reaches it when each of them next
    changes it or renews it (y-protocols renews every 15 s), and JupyterLab's Collaborators
    panel, which redraws only on a *change*, can miss it for longer. y-websocket's reference
    server sends the room's awareness on connect; so does this, from the room's own record
    of it (``YRoom.awareness``, which every client's updates already pass through). Applied
    once per process; False when pycrdt-websocket is not installed.
    ``tests/server/test_collaboration.py`` pins the upstream behaviour: once a newcomer gets
    the others' states from upstream itself, this can go.
    """
    try:
        from pycrdt import create_awareness_message
        from pycrdt.websocket import YRoom
    except ImportError:
        return False
    if getattr(YRoom.serve, "_mlfactory", False):
        return True
    serve = YRoom.serve

    @functools.wraps(serve)
    async def _serve(self: Any, channel: Any) -> None:
        awareness = self.awareness
        others = [client for client in awareness.states if client != awareness.client_id]
        if others:
            update = awareness.encode_awareness_update(others)
            try:
                await channel.send(create_awareness_message(update))
            except Exception as e:  # the room's own serve meets the closed socket too
                log.debug("Could not send the room's awareness to %s: %s", channel.path, e)
        await serve(self, channel)

    _serve._mlfactory = True  # type: ignore[attr-defined]
    YRoom.serve = _serve  # type: ignore[method-assign]
    return True
