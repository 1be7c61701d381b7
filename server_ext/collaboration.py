"""Real-time collaboration (jupyter-collaboration) on mlfactory servers: whether it is on, and
where its machine state lives.

jupyter-server-ydoc keeps every document's updates in an SQLite "ystore" (by default
``.jupyter_ystore.db`` in the server's working directory, which is the workspace) and its
reconnect records in ``<root>/.jupyter/``. Neither is the user's work: they go beside
jupyter-server-fileid's database in Jupyter's data folder, out of the file browser and of the
History's repository. The switch is jupyter-server-ydoc's own ``disable_rtc``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

REALTIME_ENV = "MLFACTORY_REALTIME"
YDOC_EXTENSION = "jupyter_server_ydoc"
# the room of every document's awareness (who is here) shares the documents' handler
AWARENESS_ROOM = "JupyterLab:globalAwareness"


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


async def reload_from_disk(serverapp: Any, path: str) -> bool:
    """Make the open collaborative document of ``path`` (an API path) take the file on disk
    now, as jupyter-server-ydoc's own watcher would at its next poll: for History's restore,
    which writes the notebook behind the room. Without this, everyone in the room waits up to
    ``YDocExtension.file_poll_interval`` (never, when an admin sets it to 0) and an autosave
    from the room in between is refused as an out-of-band change. Returns whether a room
    was told; never raises (the restore itself has succeeded)."""
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
