"""Idle shutdown's routes: a user's server reports its activity, a user reads their servers'
idle status and keeps one alive, readers of usage see what idle shutdown stopped, and
JupyterLab learns why its server stopped (through a stop ticket, see ``stop_notice``)."""

from __future__ import annotations

import asyncio
from datetime import datetime

from tornado import web

from . import stop_notice
from .base import APIError, BaseHandler, UserHandler, body_str
from .culler import KeepAliveRefused
from .periods import iso_utc
from .scopes import USAGE_READ


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


class StopTicketHandler(UserHandler):
    """A ticket for one of the caller's servers (their server asks with its own token)."""

    @web.authenticated
    async def get(self) -> None:
        name = self.get_argument("server_name", "")
        if len(name) > 255:
            raise APIError(400, "server_name: at most 255 characters", field="server_name")
        now = self.now()
        secret = self.settings["cookie_secret"]
        ticket = stop_notice.make_ticket(secret, self.model["name"], name, now)
        self.write_json(
            {
                "server_name": name,
                "ticket": ticket,
                "expires": iso_utc(now + stop_notice.TICKET_MAX_AGE_S),
            }
        )


class LastStopHandler(BaseHandler):
    """Why the ticket's server stopped. Authenticated by the ticket alone: by the time
    JupyterLab asks, the hub has revoked the tokens it had."""

    def check_xsrf_cookie(self) -> None:  # GET only, and no cookie is read
        pass

    async def get(self) -> None:
        header = self.request.headers.get(stop_notice.TICKET_HEADER, "")
        ticket = stop_notice.read_ticket(self.settings["cookie_secret"], header, self.now())
        if ticket is None:
            raise APIError(
                403,
                f"Send a valid stop ticket in the {stop_notice.TICKET_HEADER} header; "
                "JupyterLab gets one from its server while the server runs.",
            )
        culling, culling_at = None, None
        culler = self.settings.get("culler")
        if culler is not None:
            culling = (await culler.status(ticket.user, ticket.server_name))["last_stop"]
            if culling is not None:
                stamp = culling["stopped_at"].replace("Z", "+00:00")
                culling_at = datetime.fromisoformat(stamp).timestamp()
        engine = self.accountant.store.engine
        budgets = await asyncio.to_thread(stop_notice.budget_stops, engine, ticket.issued)
        stop = stop_notice.last_stop(ticket, culling, culling_at, budgets)
        if stop is not None:
            stop = {**stop, "stopped_at": iso_utc(stop["stopped_at"])}
        self.write_json({"server_name": ticket.server_name, "stop": stop})


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/api/activity", ActivityHandler),
    (r"/api/culling/status", CullingStatusHandler),
    (r"/api/culling/keepalive", KeepAliveHandler),
    (r"/api/culling/stops", CullingStopsHandler),
    (r"/api/culling/stop-ticket", StopTicketHandler),
    (r"/api/culling/last-stop", LastStopHandler),
]
