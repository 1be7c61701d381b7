"""Publishing components from a notebook server, reviewing them, and keeping the published
ones in this server's component library.

The owner publishes a folder under the contents root: it is checked here with the component
spec (parsed, never run) and uploaded to the platform service with the server's hub token;
maintainers approve or reject through the same service. After each change, and lazily when
submissions are listed, the service's published components are laid out under the
library's cache dir as two catalog sources, ``shared`` and ``mine``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import re
import secrets
import shutil
import stat
import tempfile
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from mlfactory.components.catalog import Source
from mlfactory.components.scaffold import replace_dir
from mlfactory.components.spec import InvalidComponent, load_component
from mlfactory.components.submissions import (
    MAX_BYTES,
    MAX_FILES,
    STATUSES,
    SUBMISSION_ID,
    SubmissionError,
    check_files,
    check_name_version,
    check_path,
)
from tornado import web

from . import service_client
from .handlers import MLFactoryAPIHandler
from .service_client import Answer, Target

log = logging.getLogger(__name__)

LIBRARY_KEY = "mlfactory_components"  # the ComponentLibrary server_ext/components.py stores
STATE_KEY = "mlfactory_component_publish"
SOURCES_KEY = "published"  # the key of our sources in the library's extra sources
SYNC_EVERY_S = 60.0  # searching or listing submissions re-syncs the published copy this often
TIMEOUT_S = 30.0  # an upload of up to 1 MB
MAX_PATH = 1024
SKIPPED_DIRS = {"__pycache__", ".ipynb_checkpoints"}
READ_TIMEOUT_S = 10.0  # walking and reading the folder to publish, all of it
READ_CHUNK = 64 * 1024

WORDING = service_client.Wording(
    endpoint="components",
    unreachable="components cannot be published or reviewed now",
    not_configured="publishing and reviewing components is not available here",
)

# Where the lazy sync reads the time; monotonic so a clock change cannot stop the syncs.
clock: Callable[[], float] = time.monotonic


class FolderError(ValueError):
    """A folder that cannot be published; ``status`` is what the handler answers."""

    def __init__(self, status: int, message: str, errors: list[dict[str, str]] | None = None):
        super().__init__(message)
        self.status = status
        self.message = message
        self.errors = errors or []


# --- the folder: where it is and what it holds --------------------------------------------


def resolve_folder(root: Path, path: Any, *, allow_hidden: bool = False) -> Path:
    """The folder ``path`` names under the contents root ``root``, symlinks resolved.

    Refuses absolute paths, ``..``, backslashes, percent-encoding (a client that means
    ``%2F`` must not get ``/``), hidden folders unless the contents manager shows them, and
    anything that resolves outside ``root`` (symlinks out, ``/root-evil`` next to ``/root``).
    """
    if not isinstance(path, str) or not path.strip("/") or len(path) > MAX_PATH:
        raise FolderError(400, "path: the folder to publish, relative to your home, e.g. 'my_step'")
    if path.startswith("/") or re.match(r"[A-Za-z]:", path):
        raise FolderError(400, f"path: {path!r} is absolute; give it relative to your home folder")
    if "\\" in path or "\x00" in path or "%" in path:
        raise FolderError(400, f"path: {path!r} has '\\', '%' or a NUL; use '/' between folders")
    segments = path.rstrip("/").split("/")
    for seg in segments:
        if seg in ("", ".", ".."):
            raise FolderError(400, f"path: {path!r} must not contain '..', '.' or '//'")
        if seg.startswith(".") and not allow_hidden:
            raise FolderError(400, f"path: {path!r} is a hidden folder")
    base = root.resolve()
    target = base.joinpath(*segments)
    try:
        real = target.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise FolderError(404, f"No folder {path!r} in your home folder.") from None
    except (OSError, RuntimeError):  # a symlink loop
        raise FolderError(400, f"path: {path!r} cannot be resolved") from None
    if not real.is_relative_to(base):
        raise FolderError(403, f"path: {path!r} leads outside your home folder")
    if not real.is_dir():
        raise FolderError(400, f"path: {path!r} is not a folder")
    return real


def _kind(mode: int) -> str:
    """What a non-regular directory entry is, in words a user knows."""
    if stat.S_ISLNK(mode):
        return "a symlink"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _refuse(rel: str, mode: int) -> FolderError:
    if stat.S_ISLNK(mode):
        return FolderError(400, f"{rel}: symlinks are not published")
    return FolderError(
        400, f"{rel} is {_kind(mode)}: only regular files and folders are published; remove it"
    )


def _read_bounded(path: Path, rel: str, limit: int, deadline: float, timeout_s: float) -> bytes:
    """At most ``limit + 1`` bytes of the regular file ``path``, before ``deadline``.

    O_NOFOLLOW|O_NONBLOCK: opening a FIFO (or a symlink swapped in since the lstat) must
    neither block nor follow; fstat on the open file is what decides what it is.
    """
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:  # O_NOFOLLOW on a symlink
            raise FolderError(400, f"{rel}: symlinks are not published") from None
        raise FolderError(400, f"{rel}: cannot be read ({e.strerror})") from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise _refuse(rel, mode)
        chunks: list[bytes] = []
        left = limit + 1
        while left > 0:
            if clock() > deadline:
                raise _too_slow(timeout_s)
            try:
                chunk = os.read(fd, min(READ_CHUNK, left))
            except BlockingIOError:  # not for regular files; never wait on one that says so
                raise FolderError(400, f"{rel}: cannot be read without waiting") from None
            except OSError as e:
                raise FolderError(400, f"{rel}: cannot be read ({e.strerror})") from None
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
        return b"".join(chunks)
    finally:
        os.close(fd)


def _too_slow(timeout_s: float = READ_TIMEOUT_S) -> FolderError:
    return FolderError(
        503,
        f"Reading the folder took more than {timeout_s:g} s; try again, or publish "
        "a folder that holds only the component's files.",
    )


def collect_files(folder: Path, timeout_s: float = READ_TIMEOUT_S) -> dict[str, str]:
    """The files to upload: every file in ``folder`` except caches and hidden ones, within
    the service's limits, read within ``timeout_s``.

    Only regular files and folders are published: a symlink could upload a file from
    anywhere, and reading a FIFO or a device would block or never end.
    """
    deadline = clock() + timeout_s
    out: dict[str, str] = {}
    total = 0
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        here = Path(dirpath)
        for d in list(dirnames):
            if clock() > deadline:
                raise _too_slow(timeout_s)
            if d in SKIPPED_DIRS or d.startswith("."):
                dirnames.remove(d)
                continue
            try:
                mode = os.lstat(here / d).st_mode
            except FileNotFoundError:  # removed while we walked
                dirnames.remove(d)
                continue
            if not stat.S_ISDIR(mode):
                raise _refuse((here / d).relative_to(folder).as_posix(), mode)
        dirnames.sort()
        for name in sorted(filenames):
            if clock() > deadline:
                raise _too_slow(timeout_s)
            if name.startswith(".") or name.endswith((".pyc", ".pyo")):
                continue
            path = here / name
            rel = path.relative_to(folder).as_posix()
            try:
                mode = os.lstat(path).st_mode
            except FileNotFoundError:  # removed while we walked: it is not published
                continue
            if not stat.S_ISREG(mode):
                raise _refuse(rel, mode)
            try:
                check_path(rel)
            except SubmissionError as e:
                raise FolderError(400, e.message.removeprefix("files: ")) from None
            if len(out) >= MAX_FILES:
                raise FolderError(413, f"The folder has more than {MAX_FILES} files to publish.")
            data = _read_bounded(path, rel, MAX_BYTES - total, deadline, timeout_s)
            total += len(data)
            if total > MAX_BYTES:
                raise FolderError(413, f"The folder holds more than {MAX_BYTES:,} bytes.")
            try:
                out[rel] = data.decode("utf-8")
            except UnicodeDecodeError:
                raise FolderError(400, f"{rel}: only text files (UTF-8) are published") from None
    return out


def check_folder(folder: Path, timeout_s: float = READ_TIMEOUT_S) -> dict[str, str]:
    """Collect the files in ``folder`` and validate the component they make with the spec.

    The spec reads the copy that was collected, never ``folder`` itself: what is checked is
    what is uploaded, and a file swapped for a FIFO after collecting cannot block the check.
    """
    files = collect_files(folder, timeout_s)
    with tempfile.TemporaryDirectory(prefix="mlfactory-publish-") as tmp:
        copy = Path(tmp) / folder.name  # the spec's messages name the folder
        for rel, text in files.items():
            (copy / rel).parent.mkdir(parents=True, exist_ok=True)
            (copy / rel).write_text(text, encoding="utf-8")
        copy.mkdir(exist_ok=True)
        try:
            load_component(copy, source="user")
        except InvalidComponent as e:
            errors = []
            for err in e.errors:
                try:
                    file = Path(err.file).relative_to(copy).as_posix()
                except ValueError:
                    file = Path(err.file).name
                errors.append({"file": file, "key": err.key, "message": err.message})
            lines = "; ".join(f"{x['file']}: {x['key'] or '(top)'}: {x['message']}" for x in errors)
            raise FolderError(400, f"The component is not valid: {lines}", errors) from None
    return files


async def read_folder(folder: Path) -> dict[str, str]:
    """check_folder in a thread, so reading the folder never holds up the event loop.

    The thread keeps its own deadline; wait_for is the backstop for a read that stalls
    inside the kernel (a hung network filesystem), where that deadline cannot see.
    """
    try:
        return await asyncio.wait_for(asyncio.to_thread(check_folder, folder), READ_TIMEOUT_S + 5)
    except TimeoutError:
        raise _too_slow() from None


# --- the published copy -------------------------------------------------------------------


def materialise(root: Path, published: Mapping[str, Any]) -> dict[str, Path]:
    """Lay out the service's ``published`` answer as ``root/shared`` and ``root/mine``, each
    ``<name>/<version>/<files>``, swapping each folder whole so a reader never sees half.
    Entries with unsafe names are skipped (and logged), never written."""
    root = root.expanduser()
    root.mkdir(parents=True, exist_ok=True)
    out = {}
    for ns in ("shared", "mine"):
        staging = root / f".staging-{ns}-{secrets.token_hex(4)}"
        staging.mkdir()
        try:
            for item in published.get(ns) or ():
                try:
                    name, version = check_name_version(item.get("name"), item.get("version"))
                    files = check_files(item.get("files"))
                except (SubmissionError, AttributeError) as e:
                    log.warning("Skipping a published component the service sent: %s", e)
                    continue
                folder = staging / name / version
                for rel, text in files.items():
                    (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                    (folder / rel).write_text(text, encoding="utf-8")
            replace_dir(staging, root / ns)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        out[ns] = root / ns
    return out


@dataclass
class SyncState:
    etag: str | None = None
    synced_at: float | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    task: asyncio.Future[None] | None = None


def _state(settings: dict[str, Any]) -> SyncState:
    state = settings.get(STATE_KEY)
    if state is None:
        state = settings[STATE_KEY] = SyncState()
    return state


async def sync_published(settings: dict[str, Any], target: Target | None = None) -> bool:
    """Fetch the published components and hand them to the library; True when it changed.

    Never raises for what the service or the disk does: the library keeps what it had.
    """
    library = settings.get(LIBRARY_KEY)
    target = target or service_client.target_from_env()
    if library is None or not isinstance(target, Target):
        return False
    state = _state(settings)
    async with state.lock:
        query = {"since": state.etag} if state.etag else None
        answer = await service_client.call(
            target.url("components/published", query), target.token, WORDING, timeout_s=TIMEOUT_S
        )
        if not answer.ok:
            log.warning("Fetching published components failed: %s", answer.problem)
            return False
        state.synced_at = clock()
        if answer.body.get("unchanged") and state.etag:
            return False
        root = Path(library.cache_dir) / "published"
        try:
            folders = await asyncio.to_thread(materialise, root, answer.body)
        except OSError as e:
            log.warning("Laying out published components under %s failed: %s", root, e)
            return False
        state.etag = answer.body.get("etag") or None
        library.set_extra_sources(
            SOURCES_KEY,
            [
                Source("shared", folders["shared"], "published"),
                Source("mine", folders["mine"], "user"),
            ],
        )
        await library.refresh(fetch=False)  # a rescan; the git sources keep their schedule
        return True


def pending_sync(settings: dict[str, Any]) -> asyncio.Future[None] | None:
    """The sync still running in the background, if any (cancelled when the server stops)."""
    task = _state(settings).task
    return task if task is not None and not task.done() else None


def sync_soon(settings: dict[str, Any]) -> asyncio.Future[None] | None:
    """Start a sync in the background when the last one is older than SYNC_EVERY_S."""
    state = _state(settings)
    if state.task is not None and not state.task.done():
        return state.task
    if state.synced_at is not None and clock() - state.synced_at < SYNC_EVERY_S:
        return None

    async def run() -> None:
        try:
            await sync_published(settings)
        except Exception:  # a background refresh must never take the handler down
            log.exception("Refreshing published components failed")

    state.task = asyncio.ensure_future(run())
    return state.task


# --- REST ---------------------------------------------------------------------------------


class ComponentPublishHandler(MLFactoryAPIHandler):
    """Owner-only: the server's hub token acts as its owner at the platform service."""

    auth_resource = "mlfactory:components"

    def target(self) -> Target:
        target = service_client.target_from_env()
        if not isinstance(target, Target):
            self.answer(service_client.not_configured(target, WORDING))
            raise web.Finish()
        return target

    def answer(self, answer: Answer, status: int | None = None) -> None:
        if not answer.ok:
            log.warning("Component request failed: %s", answer.problem)
        self.set_status(status or answer.status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(answer.body))

    async def resync(self, target: Target) -> None:
        try:
            await sync_published(self.settings, target)
        except Exception:  # the change is made at the service; the copy catches up later
            log.exception("Refreshing published components failed")


class PublishHandler(ComponentPublishHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.require_owner()
        target = self.target()
        body = self.body()
        cm = self.contents_manager
        root = Path(getattr(cm, "root_dir", "") or self.settings.get("server_root_dir", ""))
        try:
            folder = resolve_folder(
                root, body.get("path"), allow_hidden=bool(getattr(cm, "allow_hidden", False))
            )
            files = await read_folder(folder)
        except FolderError as e:
            self.set_status(e.status)
            reply: dict[str, Any] = {"message": e.message}
            if e.errors:
                reply["errors"] = e.errors
            self.finish(json.dumps(reply))
            return
        answer = await service_client.call(
            target.url("components/submissions"),
            target.token,
            WORDING,
            method="POST",
            body={"files": files},
            timeout_s=TIMEOUT_S,
            passthrough=frozenset({400, 409, 413}),
        )
        if answer.ok:
            await self.resync(target)
        self.answer(answer)


class SubmissionsHandler(ComponentPublishHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.require_owner()
        status = self.get_argument("status", "all")
        if status not in (*STATUSES, "all"):
            raise web.HTTPError(400, f"status: use one of {', '.join(STATUSES)} or all")
        target = self.target()
        answer = await service_client.call(
            target.url("components/submissions", {"status": status}), target.token, WORDING
        )
        if answer.ok:
            sync_soon(self.settings)
        self.answer(answer)


class SubmissionHandler(ComponentPublishHandler):
    """One submission with its files: what a reviewer reads before deciding."""

    @web.authenticated
    @authorized
    async def get(self, sub_id: str) -> None:
        self.require_owner()
        if not SUBMISSION_ID.fullmatch(sub_id):
            raise web.HTTPError(404, "No submission has this id.")
        target = self.target()
        answer = await service_client.call(
            target.url(f"components/submissions/{sub_id}"),
            target.token,
            WORDING,
            passthrough=frozenset({404}),
        )
        self.answer(answer)


class ReviewHandler(ComponentPublishHandler):
    @web.authenticated
    @authorized
    async def post(self, sub_id: str) -> None:
        self.require_owner()
        if not SUBMISSION_ID.fullmatch(sub_id):
            raise web.HTTPError(404, "No submission has this id.")
        body = self.body()
        review = {
            "decision": body.get("decision"),
            "note": body.get("note") or "",
            "revision": body.get("revision"),
        }
        target = self.target()
        answer = await service_client.call(
            target.url(f"components/submissions/{sub_id}/review"),
            target.token,
            WORDING,
            method="POST",
            body=review,
            passthrough=frozenset({400, 403, 404, 409}),
        )
        if answer.ok:
            await self.resync(target)
        self.answer(answer)


def setup(app: Any) -> None:
    app.settings[STATE_KEY] = SyncState()


# Patterns are relative: ExtensionApp prefixes them with the server's base_url.
default_handlers = [
    (r"/mlfactory/components/publish", PublishHandler),
    (r"/mlfactory/components/submissions", SubmissionsHandler),
    (r"/mlfactory/components/submissions/([^/]+)", SubmissionHandler),
    (r"/mlfactory/components/submissions/([^/]+)/review", ReviewHandler),
]
