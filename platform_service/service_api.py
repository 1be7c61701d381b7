"""The service's own routes: the OAuth callback that logs a browser in, the OpenAPI document
and the health check."""

from __future__ import annotations

from typing import Any

from jupyterhub.services.auth import HubOAuthCallbackHandler, UserNotAllowed
from tornado import web

from .base import APIError, BaseHandler
from .periods import iso_utc


class OAuthCallbackHandler(HubOAuthCallbackHandler, BaseHandler):
    """JupyterHub's OAuth callback on the service's own ``HubOAuth`` (the one the login
    redirect stored its state and PKCE verifier in), with the service's JSON errors."""

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    async def prepare(self) -> None:
        # The callback asks for current_user when the state is stale; identify the user here,
        # asynchronously, so the mixin's synchronous path never blocks the event loop.
        model = await self.hub_auth.get_user(self, sync=False)
        try:
            self._hub_auth_user_cache = self.check_hub_user(model) if model else None
        except UserNotAllowed:
            self._hub_auth_user_cache = None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message and 400 <= status_code < 500:
            # JupyterHub's messages here tell the user what to do ("Try logging in again.")
            kwargs["exc_info"] = (APIError, APIError(status_code, exc.log_message), None)
        super().write_error(status_code, **kwargs)


class OpenAPIHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/yaml")
        self.finish(self.settings["openapi"])


class HealthHandler(BaseHandler):
    def get(self) -> None:
        last = self.accountant.last_tick
        self.write_json({"status": "ok", "last_tick": iso_utc(last)})


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/oauth_callback", OAuthCallbackHandler),
    (r"/openapi.yaml", OpenAPIHandler),
    (r"/api/health", HealthHandler),
]
