"""The Models panel's calls to the platform service's model registry: list the models, read
one, and the owner's actions (move an alias, stop or resume serving a version, choose the
groups that may publish, or predict where the registry supports it).

Publishing itself runs in the kernel (``mlfactory.model_api.publish``), which streams the
package to the registry; these routes only relay small JSON requests. The server's hub token
acts as its owner at the service, so every route here is owner-only, and the registry
decides whether that owner may change a given model.
"""

from __future__ import annotations

import json
import logging
import re
from typing import Any

from jupyter_server.auth.decorator import authorized
from tornado import web

from . import service_client
from .handlers import MLFactoryAPIHandler
from .service_client import Answer, Target

log = logging.getLogger(__name__)

# the registry's own rules (model_api's NAME_PATTERN, package.ALIAS_PATTERN): checked here
# too, so a malformed segment never reaches the service's URL
NAME = r"[a-z0-9][a-z0-9_-]{0,62}"
ALIAS = r"[a-z][a-z0-9_-]{0,31}"
VERSION = r"[1-9][0-9]{0,8}"  # a version number; the route takes any segment and says so
MAX_GROUPS = 200

WORDING = service_client.Wording(
    endpoint="models",
    unreachable="the model registry cannot be shown or changed now",
    not_configured="the model registry is not available here",
)
# refusals whose words help the person: no such model or version, not yours, a bad value
PASSTHROUGH = frozenset({400, 403, 404, 409})


def grants_body(body: dict[str, Any]) -> dict[str, list[str]]:
    """The ``groups`` (may publish) and ``predict_groups`` (may call) lists the owner sent;
    at least one of them, each a list of group names."""
    out: dict[str, list[str]] = {}
    for key in ("groups", "predict_groups"):
        if key not in body:
            continue
        value = body[key]
        if (
            not isinstance(value, list)
            or len(value) > MAX_GROUPS
            or not all(isinstance(g, str) and 0 < len(g) <= 255 for g in value)
        ):
            raise web.HTTPError(400, "%s: a list of group names", key)
        out[key] = sorted({g.strip() for g in value if g.strip()})
    if not out:
        raise web.HTTPError(
            400, "Send groups (who may publish) or predict_groups (who may call the model)."
        )
    return out


class ModelsHandler(MLFactoryAPIHandler):
    """Owner-only: the server's hub token speaks for its owner at the registry."""

    auth_resource = "mlfactory:models"

    def target(self) -> Target:
        target = service_client.target_from_env()
        if not isinstance(target, Target):
            self.answer(service_client.not_configured(target, WORDING))
            raise web.Finish()
        return target

    def answer(self, answer: Answer) -> None:
        if not answer.ok:
            log.warning("Model registry request failed: %s", answer.problem)
        self.set_status(answer.status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(answer.body))

    async def relay(self, path: str, method: str = "GET", body: Any = None) -> None:
        target = self.target()
        answer = await service_client.call(
            target.url(path),
            target.token,
            WORDING,
            method=method,
            body=body,
            passthrough=PASSTHROUGH,
        )
        self.answer(answer)


class ListHandler(ModelsHandler):
    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.require_owner()
        await self.relay("models")


class ModelHandler(ModelsHandler):
    @web.authenticated
    @authorized
    async def get(self, name: str) -> None:
        self.require_owner()
        await self.relay(f"models/{name}")

    @web.authenticated
    @authorized
    async def patch(self, name: str) -> None:
        self.require_owner()
        await self.relay(f"models/{name}", "PATCH", grants_body(self.body()))


class VersionHandler(ModelsHandler):
    @web.authenticated
    @authorized
    async def patch(self, name: str, version: str) -> None:
        """``{"serving": true|false}``: resume or stop serving this version."""
        self.require_owner()
        if not re.fullmatch(VERSION, version):
            raise web.HTTPError(404, "version: %r is not a version number", version)
        serving = self.body().get("serving")
        if type(serving) is not bool:
            raise web.HTTPError(400, "serving: true (serve this version) or false (stop)")
        await self.relay(f"models/{name}/versions/{version}", "PATCH", {"serving": serving})


class AliasHandler(ModelsHandler):
    @web.authenticated
    @authorized
    async def put(self, name: str, alias: str) -> None:
        """``{"version": n}``: point the alias at version n."""
        self.require_owner()
        version = self.body().get("version")
        if type(version) is not int or not re.fullmatch(VERSION, str(version)):
            raise web.HTTPError(400, "version: the version number the alias should name")
        await self.relay(f"models/{name}/aliases/{alias}", "PUT", {"version": version})


# Patterns are relative: ExtensionApp prefixes them with the server's base_url.
default_handlers = [
    (r"/mlfactory/models", ListHandler),
    (rf"/mlfactory/models/({NAME})", ModelHandler),
    (rf"/mlfactory/models/({NAME})/versions/([^/]+)", VersionHandler),
    (rf"/mlfactory/models/({NAME})/aliases/({ALIAS})", AliasHandler),
]
