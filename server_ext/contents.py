"""The server's contents manager, made safe against the races of saving in place.

jupyter_server writes a file in place (truncate, then write) and jupytext writes a paired
notebook's ``.ipynb``, converts it, then writes its text pair; a rename moves both. Readers
that arrive in between see states that never were. These wrappers go on the server's
contents manager instance (after jupytext has replaced its class), keep its class and its
API, and are applied once per manager.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import weakref
from typing import Any

from jupyter_core.utils import ensure_async
from tornado.web import HTTPError

# a directory listing that lost an entry to a rename or delete is read again, this often
LISTING_TRIES = 3


def harden(contents_manager: Any) -> None:
    """Both wrappers below (each a no-op on a synchronous manager)."""
    serialize_notebook_io(contents_manager)
    relist_vanished_entries(contents_manager)


def notebook_key(path: str) -> str:
    """What a notebook and its text pair share: the API path without its extension."""
    return os.path.splitext(path.strip("/"))[0]


def serialize_notebook_io(contents_manager: Any) -> bool:
    """Make a read of a notebook wait for a save of it (or of its pair) that is under way.

    jupyter_server writes a notebook in place (truncate, then write) and jupytext writes the
    ``.ipynb`` before its text pair, so a read in between gets a cut-off notebook or
    jupytext's 400 "live.ipynb is more recent than live.py". Every read and save of this
    server (JupyterLab, the collaboration rooms, the history's restore) goes through this
    manager, so one lock per notebook in this process closes both windows. A hash read
    between the two writes is wrong too: JupyterLab compares it with the hash it knows
    before each save, and showed "File Changed" for a notebook nobody else had touched
    (jupytext#1447, under real-time collaboration). Only notebook saves and notebook reads
    with content or a hash take the lock; a bare ``content=False`` (the save's own
    follow-up, the file browser's polling) does not. False for a synchronous manager.
    """
    get, save = contents_manager.get, contents_manager.save
    if getattr(save, "_mlfactory_serialized", False):
        return True
    if not (asyncio.iscoroutinefunction(get) and asyncio.iscoroutinefunction(save)):
        return False
    locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def lock_for(path: str) -> asyncio.Lock:
        key = notebook_key(path)
        lock = locks.get(key)
        if lock is None:
            lock = locks[key] = asyncio.Lock()
        return lock

    @functools.wraps(get)
    async def serialized_get(path: str, content: bool = True, *args: Any, **kwargs: Any) -> Any:
        # get(path, content, type, format, require_hash): a hash reads the files too
        hashed = kwargs.get("require_hash", args[2] if len(args) > 2 else False)
        if not ((content or hashed) and path.endswith(".ipynb")):
            return await get(path, content, *args, **kwargs)
        async with lock_for(path):
            return await get(path, content, *args, **kwargs)

    @functools.wraps(save)
    async def serialized_save(model: dict[str, Any], path: str = "") -> Any:
        if not isinstance(model, dict) or model.get("type") != "notebook":
            return await save(model, path)
        async with lock_for(path):
            return await save(model, path)

    serialized_save._mlfactory_serialized = True  # type: ignore[attr-defined]
    contents_manager.get = serialized_get
    contents_manager.save = serialized_save
    contents_manager._mlfactory_notebook_lock = lock_for
    contents_manager._mlfactory_unlocked = (get, save)
    return True


def notebook_lock(contents_manager: Any, path: str) -> contextlib.AbstractAsyncContextManager:
    """The lock that this manager's saves and reads of the notebook at ``path`` (an API
    path) and of its text pair take: for code that reads or writes the files directly and
    must not land between jupytext's two writes. A no-op where the manager was not
    hardened (a synchronous one, or none)."""
    lock_for = getattr(contents_manager, "_mlfactory_notebook_lock", None)
    return lock_for(path) if lock_for is not None else contextlib.nullcontext()


async def save_and_read_back(
    contents_manager: Any, model: dict[str, Any], path: str
) -> dict[str, Any]:
    """Save a notebook and read it back as every reader of it gets it (jupytext merges its
    pair), from inside ``notebook_lock(path)`` (the lock is not re-entrant): no other save of
    it lands between the two."""
    get, save = getattr(
        contents_manager, "_mlfactory_unlocked", (contents_manager.get, contents_manager.save)
    )
    await ensure_async(save(model, path))
    return await ensure_async(get(path, content=True, type="notebook", format="json"))


def relist_vanished_entries(contents_manager: Any) -> bool:
    """Read a directory again when an entry vanished while it was being listed.

    jupyter_server lists a folder by ``lstat``-ing each name and then asking the manager for
    its model; a file renamed or deleted between the two (jupytext renames a notebook's pair
    a moment after the notebook) makes the whole listing 404, and JupyterLab's file browser
    shows "Directory not found" for a folder that is there. On a 404 for a folder that still
    exists, the listing is read again (``LISTING_TRIES`` in all). False for a synchronous
    manager.
    """
    get = contents_manager.get
    if getattr(get, "_mlfactory_relist", False):
        return True
    if not asyncio.iscoroutinefunction(get):
        return False

    @functools.wraps(get)
    async def relisting_get(path: str, content: bool = True, *args: Any, **kwargs: Any) -> Any:
        for attempt in range(1, LISTING_TRIES + 1):
            try:
                return await get(path, content, *args, **kwargs)
            except HTTPError as e:
                if (
                    e.status_code != 404
                    or not content
                    or attempt == LISTING_TRIES
                    or not await ensure_async(contents_manager.dir_exists(path))
                ):
                    raise

    relisting_get._mlfactory_relist = True  # type: ignore[attr-defined]
    contents_manager.get = relisting_get
    return True
