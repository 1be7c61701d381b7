"""The model registry's routes at the platform service: list and read models, publish a
version (the upload streams to a temporary file under a size limit, checked before a byte
is read and as it arrives), move aliases, stop or resume versions, grant groups. The
tables and the repository on disk are ``models_db.py``; the rules are ``models_registry.py``.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from pathlib import Path
from typing import Any

from mlfactory.hub.platform_schema import Models
from tornado import web

from .base import APIError, UserHandler, body_str_list
from .models_db import INCOMING, NO_MODEL, Registry, registry_for
from .models_registry import RegistryError, check_alias, check_name, check_provenance, check_size

TORNADO_MARGIN = 64 << 20  # tornado's body limit sits this far above models.max_upload_bytes


class RegistryHandler(UserHandler):
    """Base of the registry routes: the config, the registry and the models service's URLs."""

    @property
    def config(self) -> Models:
        return self.accountant.config.models

    @property
    def registry(self) -> Registry:
        return registry_for(self.application)

    def urls(self, name: str, ref: str) -> dict[str, str]:
        """Where the models service answers for a version or alias (behind hub auth)."""
        prefix = self.settings["service_prefix"].rstrip("/")
        base = prefix.rsplit("/services/", 1)[0] + "/services/models"
        model = f"{base}/v2/models/{name}/versions/{ref}"
        return {"metadata": model, "infer": f"{model}/infer", "predict": f"{model}/predict"}

    def with_urls(self, name: str, model: dict[str, Any]) -> dict[str, Any]:
        for v in model.get("versions", []):
            v["urls"] = self.urls(name, str(v["version"]))
        for a in model.get("aliases", {}).values():
            a["urls"] = self.urls(name, a["alias"])
        return model

    def name_arg(self, name: str) -> str:
        try:
            return check_name(name)
        except RegistryError:
            raise APIError(404, NO_MODEL) from None

    async def run(self, coro: Any) -> Any:
        try:
            return await coro
        except RegistryError as e:
            raise APIError(e.status, e.message, e.field) from None


class ModelsHandler(RegistryHandler):
    @web.authenticated
    async def get(self) -> None:
        models = await self.registry.names()
        self.write_json({"models": [self.with_urls(m["name"], m) for m in models]})


class ModelHandler(RegistryHandler):
    @web.authenticated
    async def get(self, name: str) -> None:
        found = await self.registry.detail(self.name_arg(name))
        if found is None:
            raise APIError(404, NO_MODEL)
        self.write_json({"model": self.with_urls(name, found)})

    @web.authenticated
    async def patch(self, name: str) -> None:
        """``groups``: who may publish versions and move aliases (the owner sets it);
        ``predict_groups``: who may call the model (the owner or an admin sets it)."""
        body = self.json_body()
        keys = {"groups", "predict_groups"}
        if not body or set(body) - keys:
            raise APIError(
                400,
                "Send groups (who may publish versions and move aliases) and/or "
                "predict_groups (who may call the model), each a list of group names.",
                next(iter(sorted(set(body) - keys)), "groups"),
            )
        lists = {}
        for key in keys & set(body):
            try:
                lists[key] = body_str_list(body, key)
            except ValueError as e:
                raise APIError(400, str(e), key) from None
        name = self.name_arg(name)
        user = self.model["name"]
        answer: dict[str, Any] = {"name": name}
        known = await self.known_groups() if "predict_groups" in lists else None
        answer.update(
            await self.run(
                self.registry.update_access(
                    name,
                    user,
                    admin=bool(self.model.get("admin")),
                    known=known,
                    groups=lists.get("groups"),
                    predict_groups=lists.get("predict_groups"),
                )
            )
        )
        found = await self.registry.detail(name)
        if found is not None:
            answer.setdefault("groups", found["groups"])
            answer.setdefault("predict_groups", found["predict_groups"])
        self.write_json(answer)

    async def known_groups(self) -> set[str]:
        """Groups that exist: the platform config's and the hub's."""
        known = {g.name for g in self.accountant.config.groups}
        hub = self.accountant.hub
        if hub is not None:
            try:
                known |= {g["name"] for g in await hub.groups()}
            except Exception as e:  # the hub restarting: config groups still count
                raise APIError(
                    503, f"Cannot list the hub's groups right now ({type(e).__name__}); retry."
                ) from None
        return known


@web.stream_request_body
class VersionsHandler(RegistryHandler):
    """``POST``: the body is a tar (optionally gzip) of the package folder, streamed to a
    temporary file; the size limit holds while it streams."""

    _file: Any = None
    _size = 0

    async def prepare(self) -> None:
        await super().prepare()
        if self.request.method != "POST" or self.current_user is None:
            return
        name = self.name_arg(self.path_args[0])
        limit = self.config.max_upload_bytes
        try:
            length = self.request.headers.get("Content-Length")
            check_size(int(length) if length and length.isdigit() else None, limit)
            check_provenance(
                self.get_argument("notebook_path", None), self.get_argument("history_version", None)
            )
        except RegistryError as e:
            raise APIError(e.status, e.message, e.field) from None
        # the owner check runs before a byte is read: a refused caller uploads nothing
        await self.run(
            self.registry.check_publish(
                name, self.model["name"], await self.my_groups(), self.config.publishers
            )
        )
        # tornado's own limit answers a bare 400 and drops the connection; ours (in
        # data_received) answers 413 with the reason, so tornado's sits well above it
        self.request.connection.set_max_body_size(limit + TORNADO_MARGIN)
        incoming = self.registry.repo.root / INCOMING
        await asyncio.to_thread(incoming.mkdir, parents=True, exist_ok=True)
        fd, path = tempfile.mkstemp(dir=incoming, prefix="upload-")
        self._file = os.fdopen(fd, "wb")
        self._path = Path(path)
        self._digest = hashlib.sha256()

    async def data_received(self, chunk: bytes) -> None:
        if self._file is None:
            return
        self._size += len(chunk)
        limit = self.config.max_upload_bytes
        if self._size > limit:
            # a chunked upload says its size only by sending it: refuse at the first byte
            # past the limit, drop what was written, and let tornado close the connection
            self._discard()
            e = RegistryError(
                413,
                f"The upload passed {limit} bytes while streaming; this platform takes model "
                f"packages of at most {limit} bytes (models.max_upload_bytes).",
            )
            err = APIError(e.status, e.message)
            self.send_error(413, exc_info=(APIError, err, None))
            return
        self._digest.update(chunk)
        await asyncio.to_thread(self._file.write, chunk)

    def on_finish(self) -> None:
        self._discard()

    def on_connection_close(self) -> None:
        self._discard()
        super().on_connection_close()  # ends the wait for the body: post() never runs

    def _discard(self) -> None:
        if self._file is not None:
            self._file.close()
            self._path.unlink(missing_ok=True)
            self._file = None

    @web.authenticated
    async def post(self, name: str) -> None:
        if self._finished or self._file is None:  # refused while streaming
            return
        await asyncio.to_thread(self._file.close)
        try:
            check_size(self._size, self.config.max_upload_bytes)
        except RegistryError as e:
            raise APIError(e.status, e.message) from None
        expected = self.request.headers.get("X-Package-SHA256")
        if expected and expected.lower() != self._digest.hexdigest():
            raise APIError(
                400,
                "The upload's SHA-256 does not match the X-Package-SHA256 header: it was "
                "damaged on the way; publish again.",
                "archive",
            )
        version = await self.run(
            self.registry.publish(
                name,
                self._path,
                user=self.model["name"],
                groups=await self.my_groups(),
                publishers=self.config.publishers,
                limit=self.config.max_upload_bytes,
                notebook_path=self.get_argument("notebook_path", None),
                history_version=self.get_argument("history_version", None),
            )
        )
        version["urls"] = self.urls(name, str(version["version"]))
        self.write_json({"model": name, "version": version}, status=201)


class VersionHandler(RegistryHandler):
    @web.authenticated
    async def patch(self, name: str, version: str) -> None:
        """``{"serving": false}`` withdraws the version from the models service (kept in the
        repository, refused with who withdrew it); ``true`` serves it again."""
        if not version.isdigit() or len(version) > 9 or version.startswith("0"):
            raise APIError(404, f"version: {version!r} is not a version number", "version")
        body = self.json_body()
        serving = body.get("serving")
        if type(serving) is not bool or set(body) != {"serving"}:
            raise APIError(400, "serving: true or false is required (nothing else)", "serving")
        row = await self.run(
            self.registry.set_serving(
                self.name_arg(name),
                int(version),
                serving,
                self.model["name"],
                await self.my_groups(),
            )
        )
        row["urls"] = self.urls(name, version)
        self.write_json({"model": name, "version": row})


class AliasHandler(RegistryHandler):
    @web.authenticated
    async def put(self, name: str, alias: str) -> None:
        body = self.json_body()
        version = body.get("version")
        if type(version) is not int or version < 1:
            raise APIError(400, "version: the version number the alias should name", "version")
        try:
            check_alias(alias)
        except RegistryError as e:
            raise APIError(e.status, e.message, e.field) from None
        move = await self.run(
            self.registry.move_alias(
                self.name_arg(name), alias, version, self.model["name"], await self.my_groups()
            )
        )
        move["urls"] = self.urls(name, alias)
        self.write_json({"model": name, "alias": move})


# Patterns are relative to the service's prefix; app.make_app prefixes them.
_NAME = r"([a-z0-9][a-z0-9_-]{0,62})"  # model_api's NAME_PATTERN
default_handlers = [
    (r"/api/models", ModelsHandler),
    (rf"/api/models/{_NAME}", ModelHandler),
    (rf"/api/models/{_NAME}/versions", VersionsHandler),
    (rf"/api/models/{_NAME}/versions/([^/]+)", VersionHandler),
    (rf"/api/models/{_NAME}/aliases/([a-z][a-z0-9_-]{{0,31}})", AliasHandler),
]
