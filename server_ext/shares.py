"""Sharing notebooks from this server: what the JupyterLab "Share" dialog and "Shared with me"
panel call. Owner-only, every route.

Sharing reads the notebook under the contents root (confined, size-bounded, in a thread) and
sends it to the platform service with the server's hub token; the service keeps the snapshot,
so recipients never reach into this server. Opening a copy fetches the snapshot from the
service and writes it into this workspace under a name that is free, created exclusively.
The rules are in ``share_copy.py``.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from . import service_client
from .handlers import MLFactoryAPIHandler
from .history.extension import SETTINGS_KEY as HISTORY_KEY
from .history.wording import AUTOMATIC_MESSAGE
from .service_client import Answer, Target
from .share_copy import PathError, check_notebook_path, check_relative, copy_names, with_copied_from

log = logging.getLogger(__name__)

# What this server reads at most; the service refuses above its own `sharing.max_notebook_bytes`
# (5 MiB by default) with a message that says its limit. This bound keeps a huge file out of
# memory before that.
MAX_READ_BYTES = 64 * 2**20
IO_TIMEOUT_S = 20.0
TIMEOUT_S = 60.0  # a 5 MB notebook up to the service, or down from it
SHARE_ID_CHARS = frozenset("0123456789abcdef")
# the share fields the dialog may set; the notebook itself is read here, never taken from it
FIELDS = ("users", "groups", "mode", "message", "expires_at")

WORDING = service_client.Wording(
    endpoint="shares",
    unreachable="notebooks cannot be shared or opened now",
    not_configured="sharing notebooks is not available here",
)

# When a copy is made, as written into its metadata; tests replace it.
now: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731


# --- files --------------------------------------------------------------------------------


def _confined(root: Path, rel: str) -> Path:
    """``rel`` under ``root`` with symlinks resolved; 404 when missing, 403 when it leads out
    (a symlink, or ``/root-evil`` next to ``/root``)."""
    base = root.resolve()
    target = base.joinpath(*rel.split("/")) if rel else base
    try:
        real = target.resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise PathError(404, f"No {rel!r} in your home folder.") from None
    except (OSError, RuntimeError):  # a symlink loop
        raise PathError(400, f"path: {rel!r} cannot be resolved") from None
    if not real.is_relative_to(base):
        raise PathError(403, f"path: {rel!r} leads outside your home folder")
    return real


def read_notebook(root: Path, rel: str, max_bytes: int = MAX_READ_BYTES) -> dict[str, Any]:
    """The notebook at ``rel``, parsed. Only a regular file is read (O_NOFOLLOW|O_NONBLOCK: a
    FIFO or a symlink swapped in after the check neither blocks nor is followed)."""
    path = _confined(root, rel)
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise PathError(400, f"{rel}: symlinks are not shared") from None
        raise PathError(400, f"{rel}: cannot be read ({e.strerror})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise PathError(400, f"{rel} is not a regular file")
        chunks, left = [], max_bytes + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > max_bytes:
        raise PathError(413, f"{rel} is larger than {max_bytes:,} bytes; it cannot be shared.")
    try:
        nb = json.loads(data)
    except ValueError:
        raise PathError(400, f"{rel} is not a notebook (not JSON); save it in JupyterLab") from None
    if not isinstance(nb, dict):
        raise PathError(400, f"{rel} is not a notebook")
    return nb


def write_copy(root: Path, folder: str, shared_name: str, owner: str, nb: dict[str, Any]) -> str:
    """Write ``nb`` into ``folder`` under the first free copy name, created exclusively
    (O_EXCL): an existing file is never overwritten, even one that appears meanwhile.
    Returns the new file's path relative to ``root``."""
    target = _confined(root, folder)
    if not target.is_dir():
        raise PathError(400, f"path: {folder!r} is not a folder")
    data = (json.dumps(nb, indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
    for name in copy_names(shared_name, owner):
        try:
            fd = os.open(target / name, flags, 0o644)
        except FileExistsError:
            continue
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
        except BaseException:
            os.unlink(target / name)
            raise
        return (target / name).relative_to(root.resolve()).as_posix()
    raise PathError(409, "Too many copies of this notebook are here already; remove some first.")


async def _in_thread(fn: Callable[..., Any], *args: Any) -> Any:
    try:
        return await asyncio.wait_for(asyncio.to_thread(fn, *args), IO_TIMEOUT_S)
    except TimeoutError:
        raise PathError(
            503, f"The disk did not answer within {IO_TIMEOUT_S:g} s; try again."
        ) from None


# --- REST ---------------------------------------------------------------------------------


class ShareAPIHandler(MLFactoryAPIHandler):
    """Owner-only: the server's hub token acts as its owner at the platform service."""

    auth_resource = "mlfactory:shares"

    @property
    def root(self) -> Path:
        cm = self.contents_manager
        return Path(getattr(cm, "root_dir", "") or self.settings.get("server_root_dir", ""))

    @property
    def allow_hidden(self) -> bool:
        return bool(getattr(self.contents_manager, "allow_hidden", False))

    def target(self) -> Target:
        target = service_client.target_from_env()
        if not isinstance(target, Target):
            self.reply(service_client.not_configured(target, WORDING))
            raise web.Finish()
        return target

    def reply(self, answer: Answer) -> None:
        if not answer.ok:
            log.warning("Share request failed: %s", answer.problem)
        self.set_status(answer.status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(answer.body))

    def refuse(self, e: PathError) -> None:
        self.set_status(e.status)
        self.finish(json.dumps({"message": e.message}))

    async def forward(
        self,
        path: str,
        method: str = "GET",
        body: Any = None,
        passthrough: frozenset[int] = frozenset(),
        query: dict[str, str] | None = None,
    ) -> Answer:
        target = self.target()
        return await service_client.call(
            target.url(path, query),
            target.token,
            WORDING,
            method=method,
            body=body,
            timeout_s=TIMEOUT_S,
            passthrough=passthrough,
        )

    @staticmethod
    def share_id(value: str) -> str:
        if len(value) != 16 or not set(value) <= SHARE_ID_CHARS:
            raise web.HTTPError(404, "No share has this id.")
        return value

    async def notebook_at(self, path: Any) -> tuple[str, dict[str, Any]]:
        rel = check_notebook_path(path, allow_hidden=self.allow_hidden)
        return rel, await _in_thread(read_notebook, self.root, rel, MAX_READ_BYTES)


# the service's refusals whose words the user should read as they are; a 403 on creating
# means this server's token lacks access (service_client says so), never the user's doing
CREATE_CODES = frozenset({400, 404, 409, 413})
CHANGE_CODES = CREATE_CODES | {403}


class SharesHandler(ShareAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The caller's own shares."""
        self.require_owner()
        self.reply(await self.forward("shares"))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        """Share the notebook at ``path`` with ``users``/``groups``."""
        self.require_owner()
        self.target()  # "not available here" before reading anything
        body = self.body()
        try:
            rel, nb = await self.notebook_at(body.get("path"))
        except PathError as e:
            self.refuse(e)
            return
        out = {k: body[k] for k in FIELDS if k in body}
        out.update(path=rel, notebook=nb)
        self.reply(await self.forward("shares", "POST", out, CREATE_CODES))


class ReceivedHandler(ShareAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        """Shared with me."""
        self.require_owner()
        self.reply(await self.forward("shares/received"))


class RecipientsHandler(ShareAPIHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        """The Share dialog's search as you type: users and groups the owner may share with
        whose names start with ``q``; the service applies its rules."""
        self.require_owner()
        query = {"q": self.get_argument("q", "")}
        limit = self.get_argument("limit", None)
        if limit is not None:
            query["limit"] = limit
        self.reply(
            await self.forward("shares/recipients", passthrough=frozenset({400, 503}), query=query)
        )


class OneShareHandler(ShareAPIHandler):
    @web.authenticated
    @authorized
    async def get(self, share_id: str) -> None:
        self.require_owner()
        sid = self.share_id(share_id)
        self.reply(await self.forward(f"shares/{sid}", passthrough=frozenset({404})))

    @web.authenticated
    @authorized
    async def patch(self, share_id: str) -> None:
        """Change a share. ``"snapshot": true`` shares the notebook as it is now (a new
        version), read from ``path`` if given, else from where the share was made."""
        self.require_owner()
        sid = self.share_id(share_id)
        body = self.body()
        out = {k: body[k] for k in FIELDS if k in body}
        if body.get("snapshot") is True or "path" in body:
            path = body.get("path")
            if path is None:
                current = await self.forward(f"shares/{sid}", passthrough=frozenset({404}))
                if not current.ok:
                    self.reply(current)
                    return
                path = current.body.get("share", {}).get("path")
            try:
                rel, nb = await self.notebook_at(path)
            except PathError as e:
                self.refuse(e)
                return
            out["path"] = rel
            if body.get("snapshot") is True:
                out["notebook"] = nb
        self.reply(await self.forward(f"shares/{sid}", "PATCH", out, CHANGE_CODES))

    @web.authenticated
    @authorized
    async def delete(self, share_id: str) -> None:
        """Revoke."""
        self.require_owner()
        sid = self.share_id(share_id)
        self.reply(await self.forward(f"shares/{sid}", "DELETE", None, frozenset({403, 404})))


class OpenCopyHandler(ShareAPIHandler):
    @web.authenticated
    @authorized
    async def post(self, share_id: str) -> None:
        """Write the caller's own copy of a shared notebook into ``folder`` (default: the
        home folder) and say where: ``{"path", "share", "version"}``."""
        self.require_owner()
        sid = self.share_id(share_id)
        body = self.body()
        try:
            folder = check_relative(
                body.get("folder"), what="folder", allow_hidden=self.allow_hidden, empty_ok=True
            )
        except PathError as e:
            self.refuse(e)
            return
        path = f"shares/{sid}/copy"
        if isinstance(body.get("version"), int) and not isinstance(body["version"], bool):
            path += f"?version={body['version']}"
        answer = await self.forward(path, "POST", {}, frozenset({403, 404}))
        if not answer.ok:
            self.reply(answer)
            return
        share, version = answer.body.get("share") or {}, answer.body.get("version")
        nb = answer.body.get("notebook")
        if not isinstance(nb, dict) or not isinstance(share.get("owner"), str):
            self.reply(service_client.error(502, "service-error", service_client.BAD_ANSWER))
            return
        nb = with_copied_from(
            nb,
            share_id=sid,
            owner=share["owner"],
            version=version,
            path=answer.body.get("path") or share.get("name") or "",
            at=now().isoformat().replace("+00:00", "Z"),
        )
        try:
            written = await _in_thread(
                write_copy,
                self.root,
                folder,
                share.get("name") or "notebook.ipynb",
                share["owner"],
                nb,
            )
        except PathError as e:
            self.refuse(e)
            return
        except OSError as e:
            log.warning("Writing a shared notebook's copy failed: %s", e)
            self.refuse(
                PathError(500, f"The copy could not be written ({e.strerror}); check the disk.")
            )
            return
        await self.first_version(written)
        self.set_status(201)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps({"path": written, "share": share, "version": version}))

    async def first_version(self, rel: str) -> None:
        """Where the history is kept, the copy's first version says where it came from
        (the history words it from ``copied_from``). Never fails the copy."""
        workspace = self.settings.get(HISTORY_KEY)
        if workspace is None or not workspace.repo.exists:
            return
        try:
            await workspace.save_version(rel, AUTOMATIC_MESSAGE, automatic=True)
        except Exception as e:
            log.warning("The first version of the copy %s was not saved: %s", rel, e)


# Patterns are relative: ExtensionApp prefixes them with the server's base_url.
default_handlers = [
    (r"/mlfactory/shares", SharesHandler),
    (r"/mlfactory/shares/received", ReceivedHandler),
    (r"/mlfactory/shares/recipients", RecipientsHandler),
    (r"/mlfactory/shares/([^/]+)", OneShareHandler),
    (r"/mlfactory/shares/([^/]+)/open", OpenCopyHandler),
]
