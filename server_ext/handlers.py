"""REST handlers of the server extension: the shared base class and the first routes.

Every handler authenticates, authorizes against an ``mlfactory:*`` resource and answers
errors as JSON ``{"message": ...}`` without a traceback. The route table ends the module.
"""

from __future__ import annotations

import json
from http.client import responses
from typing import Any

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from tornado import web

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
                }
            )
        )


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
]
