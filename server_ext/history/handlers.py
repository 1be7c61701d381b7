"""REST handlers of the notebook history: thin wrappers over ``Workspace`` that read the
request, map ``HistoryError`` to JSON errors and end with the route table.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from .. import collaboration
from ..handlers import MLFactoryAPIHandler
from . import diffing
from .extension import SETTINGS_KEY
from .git import GitError, GitTimeout
from .paths import Refused
from .workspace import HistoryError, Workspace, first_lines

MAX_LIMIT = 1000


class HistoryHandler(MLFactoryAPIHandler):
    auth_resource = "mlfactory:history"

    @property
    def workspace(self) -> Workspace:
        return self.settings[SETTINGS_KEY]

    def reply(self, data: Any, status: int = 200) -> None:
        self.set_status(status)
        self.finish(json.dumps(data))

    async def respond(self, work: Any, status: int = 200, shape: Any = None) -> None:
        """Await ``work`` and answer its result (through ``shape``) as JSON, or the
        ``HistoryError`` it raised as ``{"message", ...}``."""
        try:
            result = await work
        except HistoryError as e:
            if not e.extra:
                raise web.HTTPError(e.status, "%s", e.message) from None
            self.set_status(e.status)
            self.finish(json.dumps({"message": e.message, **e.extra}))
            return
        except GitTimeout as e:
            raise web.HTTPError(
                504, "git did not answer in time (%s); try again.", e.stderr
            ) from None
        except GitError as e:
            raise web.HTTPError(409, "git refused: %s", first_lines(e.stderr)) from None
        self.reply(shape(result) if shape else result, status)

    def query(self, name: str, default: str | None = None) -> str | None:
        values = self.get_query_arguments(name, strip=False)
        if len(values) > 1:
            raise web.HTTPError(400, "Give %s once.", name)
        return values[0] if values else default


def _version(v: Any) -> dict[str, Any]:
    return {"version": v.to_json()}


class StatusHandler(HistoryHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        diffing.WORKERS.warm_soon()  # the panel asks first: have a diff worker ready for it
        await self.respond(self.workspace.status())


class InitHandler(HistoryHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        await self.respond(self.workspace.init())


class VersionsHandler(HistoryHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        path = self.query("path") or ""
        raw_limit = self.query("limit", "100") or "100"
        if not raw_limit.isdigit() or not 1 <= int(raw_limit) <= MAX_LIMIT:
            raise web.HTTPError(400, "limit is a whole number from 1 to %d.", MAX_LIMIT)
        await self.respond(self.workspace.versions(path, int(raw_limit)))

    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body()
        await self.respond(
            self.workspace.save_version(_text(body, "path"), body.get("message")), 201, _version
        )


class DiffHandler(HistoryHandler):
    task: asyncio.Task[Any] | None = None

    @web.authenticated
    @authorized
    async def get(self) -> None:
        diff = self.workspace.diff(self.query("path") or "", self.query("from"), self.query("to"))
        self.task = asyncio.ensure_future(diff)
        try:
            result = await self.task
        except asyncio.CancelledError:
            return  # the client went away and the worker was killed
        except HistoryError as e:
            raise web.HTTPError(e.status, "%s", e.message) from None
        except GitTimeout as e:
            raise web.HTTPError(504, "git did not answer in time (%s).", e.stderr) from None
        except GitError as e:
            raise web.HTTPError(409, "git refused: %s", first_lines(e.stderr)) from None
        if self.request.connection.stream.closed():
            return
        self.set_header("Content-Type", "application/json")
        # base and diff arrive as JSON already: put them in without parsing 5 MB again
        head = json.dumps({"path": result["path"], "from": result["from"], "to": result["to"]})
        self.write(head[:-1].encode() + b', "base": ' + result["base"])
        self.finish(b', "diff": ' + result["diff"] + b"}")

    def on_connection_close(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()
        super().on_connection_close()


class RestoreHandler(HistoryHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        body = self.body()
        path = _text(body, "path")

        async def restore() -> Any:
            version = await self.workspace.restore(path, body.get("version"))
            # before answering: the room's reload, if it comes, comes before anyone types
            await collaboration.reload_from_disk(self.serverapp, path)
            return version

        await self.respond(restore(), 201, _version)


class SettingsHandler(HistoryHandler):
    @web.authenticated
    @authorized
    def get(self) -> None:
        self.reply(self.workspace.settings().to_json())

    @web.authenticated
    @authorized
    def put(self) -> None:
        try:
            self.reply(self.workspace.put_settings(self.body()).to_json())
        except Refused as e:
            raise web.HTTPError(400, "%s", str(e)) from None


class RemoteHandler(HistoryHandler):
    @web.authenticated
    @authorized
    async def put(self) -> None:
        self.require_owner()
        await self.respond(self.workspace.set_remote(self.body()))

    @web.authenticated
    @authorized
    async def delete(self) -> None:
        self.require_owner()
        await self.respond(self.workspace.forget_remote())


class PushHandler(HistoryHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.require_owner()
        await self.respond(self.workspace.push())


class PullHandler(HistoryHandler):
    @web.authenticated
    @authorized
    async def post(self) -> None:
        self.require_owner()
        await self.respond(self.workspace.pull())


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    if not isinstance(value, str):
        raise web.HTTPError(400, "Give %s as a string.", key)
    return value


# Patterns are relative: ExtensionApp prefixes them with the server's base_url.
default_handlers = [
    (r"/mlfactory/history/status", StatusHandler),
    (r"/mlfactory/history/init", InitHandler),
    (r"/mlfactory/history/versions", VersionsHandler),
    (r"/mlfactory/history/diff", DiffHandler),
    (r"/mlfactory/history/restore", RestoreHandler),
    (r"/mlfactory/history/settings", SettingsHandler),
    (r"/mlfactory/history/remote", RemoteHandler),
    (r"/mlfactory/history/push", PushHandler),
    (r"/mlfactory/history/pull", PullHandler),
]
