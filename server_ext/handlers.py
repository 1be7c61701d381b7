"""REST handlers of the server extension: the shared base class and the first routes.

Every handler authenticates, authorizes against an ``mlfactory:*`` resource and answers
errors as JSON ``{"message": ...}`` without a traceback. The route table ends the module.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from http.client import responses
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

from . import service_client
from .limits import current_limits
from .owner import is_owner

SETTINGS_KEY = "mlfactory_settings"
AUTH_RESOURCE = "mlfactory"

UNEXPECTED_ERROR = "Unexpected error in the mlfactory server extension; the server log has details."


class MLFactoryAPIHandler(APIHandler):
    """Base for every mlfactory REST handler.

    Subclasses set ``auth_resource = "mlfactory:<noun>"``, decorate each verb with
    ``@web.authenticated`` then ``@authorized``, and call ``require_owner()`` first in
    owner-only actions. GET never changes state (XSRF is checked only on other verbs).
    """

    auth_resource = AUTH_RESOURCE

    @property
    def mlfactory(self) -> dict[str, Any]:
        """What MLFactoryServerApp.initialize_settings stored for the handlers."""
        return self.settings[SETTINGS_KEY]

    @property
    def caller(self) -> str:
        return self.current_user.username

    def require_owner(self) -> None:
        """Refuse with 403 unless the caller owns this server (see owner.is_owner)."""
        owner = self.mlfactory["owner"]
        if not is_owner(self.caller, owner):
            raise web.HTTPError(
                403,
                "Only the owner of this server (%s) can do this; you are signed in as %s. "
                "Ask the owner, or do it from your own server.",
                owner or "unknown",
                self.caller,
            )

    def body(self) -> dict[str, Any]:
        """The request's JSON object body ({} when empty); 400 with a message otherwise."""
        try:
            data = json.loads(self.request.body or b"{}")
        except ValueError:
            raise web.HTTPError(400, "The request body is not valid JSON.") from None
        if not isinstance(data, dict):
            raise web.HTTPError(400, "The request body must be a JSON object.")
        return data

    def _allowed_methods(self) -> list[str]:
        return [
            m
            for m in self.SUPPORTED_METHODS
            if getattr(type(self), m.lower()) is not web.RequestHandler._unimplemented_method
        ]

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        """JSON ``{"message": ...}``; never a traceback, whatever the debug settings."""
        message = responses.get(status_code, "Unknown HTTP Error")
        exc_info = kwargs.get("exc_info")
        exc = exc_info[1] if exc_info else None
        if isinstance(exc, web.HTTPError):
            if exc.log_message:
                try:
                    message = exc.log_message % exc.args if exc.args else exc.log_message
                except (TypeError, ValueError):
                    message = exc.log_message
            elif exc.reason:
                message = exc.reason
        elif exc is not None:
            # tornado's log_exception has already logged the traceback server-side
            message = UNEXPECTED_ERROR
        if status_code == 405:
            allowed = ", ".join(self._allowed_methods())
            self.set_header("Allow", allowed)
            if not (isinstance(exc, web.HTTPError) and exc.log_message):
                message = f"{self.request.method} is not supported here; use {allowed}."
        self.finish(json.dumps({"message": message}))


class InfoHandler(MLFactoryAPIHandler):
    """Who is calling, who owns this server, and what it was started with."""

    auth_resource = "mlfactory:info"

    @web.authenticated
    @authorized
    def get(self) -> None:
        info = self.mlfactory
        self.finish(
            json.dumps(
                {
                    "version": info["version"],
                    "user": self.caller,
                    "owner": info["owner_display"],
                    "is_owner": is_owner(self.caller, info["owner"]),
                    "profile": info["profile"],
                    "limits": current_limits(),
                    # when this server process started: the panel's uptime
                    "started": iso_started(self.settings.get("started")),
                }
            )
        )


def iso_started(started: datetime | None) -> str | None:
    """jupyter-server's start time (aware or naive UTC) as ISO 8601 with a ``Z``."""
    if started is None:
        return None
    if started.tzinfo is None:
        started = started.replace(tzinfo=UTC)
    return started.astimezone(UTC).isoformat().replace("+00:00", "Z")


STOP_TICKET_WORDING = service_client.Wording(
    endpoint="stop-ticket",
    unreachable="JupyterLab cannot learn why this server stops, if it does",
    not_configured="JupyterLab cannot say why this server stopped, if it does",
)


class StopTicketHandler(MLFactoryAPIHandler):
    """A ticket from the platform service that lets JupyterLab read, once this server is
    gone (and the hub has revoked its tokens), why it stopped. GET: the service only signs."""

    auth_resource = "mlfactory:session"
    # polled by JupyterLab: not activity
    _track_activity = False

    @web.authenticated
    @authorized
    async def get(self) -> None:
        # the ticket reads the owner's stops: not for people the server is shared with
        self.require_owner()
        target = service_client.target_from_env()
        if isinstance(target, service_client.Target):
            server_name = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
            answer = await service_client.call(
                target.url("culling/stop-ticket", {"server_name": server_name}),
                target.token,
                STOP_TICKET_WORDING,
            )
        else:
            answer = service_client.not_configured(target, STOP_TICKET_WORDING)
        if not answer.ok:
            self.log.warning("Stop ticket request failed: %s", answer.problem)
        self.set_status(answer.status)
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(answer.body))


class HealthHandler(MLFactoryAPIHandler):
    """Liveness of the extension, for the panels and for probes."""

    auth_resource = "mlfactory:health"
    # a probe polling this must not keep the server from being culled as idle
    _track_activity = False

    @web.authenticated
    @authorized
    def get(self) -> None:
        self.finish(json.dumps({"status": "ok"}))


# Patterns are relative: ExtensionApp prefixes them with the server's base_url.
default_handlers = [
    (r"/mlfactory/api/info", InfoHandler),
    (r"/mlfactory/api/health", HealthHandler),
    (r"/mlfactory/api/stop-ticket", StopTicketHandler),
]
