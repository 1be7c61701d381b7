"""Idle shutdown's routes: a user's server reports its activity, a user reads their servers'
idle status and keeps one alive, and readers of usage see what idle shutdown stopped."""

from __future__ import annotations

from tornado import web

from .base import APIError, UserHandler, body_str
from .culler import KeepAliveRefused
from .permissions import USAGE_READ


class CullingHandler(UserHandler):
    @property
    def culler(self):
        culler = self.settings.get("culler")
        if culler is None:
            raise APIError(503, "Idle shutdown is not running in this platform service.")
        return culler


class ActivityHandler(CullingHandler):
    """A user's server reports what runs in it (its own token; see server_ext/activity.py)."""

    @web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        try:
            body["server_name"] = body_str(body, "server_name", 255, required=False)
        except ValueError as e:
            raise APIError(400, str(e), field="server_name") from None
        await self.culler.record_report(self.model["name"], body)
        self.set_status(204)
        self.finish()


class CullingStatusHandler(CullingHandler):
    @web.authenticated
    async def get(self) -> None:
        name = self.get_argument("server_name", None)
        if name is not None and len(name) > 255:
            raise APIError(400, "server_name: at most 255 characters", field="server_name")
        self.write_json(await self.culler.status(self.model["name"], name))


class KeepAliveHandler(CullingHandler):
    @web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        try:
            name = body_str(body, "server_name", 255, required=False)
        except ValueError as e:
            raise APIError(400, str(e), field="server_name") from None
        try:
            self.write_json(await self.culler.keepalive(self.model["name"], name))
        except KeepAliveRefused as e:
            raise APIError(409, str(e)) from None


class CullingStopsHandler(CullingHandler):
    @web.authenticated
    async def get(self) -> None:
        v = self.require(USAGE_READ)
        t0, t1, d0, d1 = self.date_range()
        report = await self.culler.stops(t0, t1, v)
        self.write_json({"from": d0, "to": d1, "currency": self.accountant.currency, **report})


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/api/activity", ActivityHandler),
    (r"/api/culling/status", CullingStatusHandler),
    (r"/api/culling/keepalive", KeepAliveHandler),
    (r"/api/culling/stops", CullingStopsHandler),
]
