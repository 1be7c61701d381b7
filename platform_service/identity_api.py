"""Managed identity routes: a running server's extension asks, with the server's own hub token,
for a fresh identity (``POST /api/identity``), revokes the one it replaced after the overlap
(``DELETE /api/identity/<token id>``) and all of them as it stops (``DELETE /api/identity``).

Only a server's own token may do this (the hub revokes it when the server stops): an
identity cannot mint its successor, so a leaked one ends at its expiry. Rules: ``identity``;
hub calls: ``identity_mint``.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado.httpclient import HTTPClientError

from .base import APIError, UserHandler
from .identity import token_server
from .identity_mint import HubUnavailable, IdentityMint, identity_mint

log = logging.getLogger("mlfactory.service.identity")
HUB_DOWN = (
    "The hub cannot be reached to mint this server's identity; the server keeps the one it "
    "has until it expires and retries."
)


class IdentityHandler(UserHandler):
    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 503:
            self.set_header("Retry-After", "30")
        super().write_error(status_code, **kwargs)

    @property
    def mint(self) -> IdentityMint:
        mint = identity_mint(self.settings)
        if mint is None:
            raise APIError(503, "The platform service has no hub connection here.")
        return mint

    async def server(self, *, running: bool) -> tuple[str, str]:
        """(user, server name) of the calling server's own token; 403 for any other token.
        With ``running``, the hub must list that server as running or starting."""
        name = token_server(self.model)
        if name is None or self.model.get("kind", "user") != "user":
            raise APIError(
                403,
                "A server's identity is asked for by the server itself, with its own hub token "
                "(JUPYTERHUB_API_TOKEN); nothing else may mint or revoke one.",
            )
        user = self.model["name"]
        if running:
            fresh = await self._hub_user(user)
            server = ((fresh or {}).get("servers") or {}).get(name) or {}
            if not (server.get("ready") or server.get("pending") == "spawn"):
                raise APIError(403, f"The server {name or '(default)'!r} of {user} is not running.")
        return user, name

    async def _hub_user(self, user: str) -> dict | None:
        try:
            return await self.mint.hub.user(user)
        except HTTPClientError as e:
            if e.code == 599:
                raise APIError(503, HUB_DOWN) from None
            raise
        except OSError:
            raise APIError(503, HUB_DOWN) from None


def hub_refused(e: HTTPClientError) -> APIError:
    """The hub answered the mint with an error: a setting to fix, named for the admin."""
    detail = ""
    if e.response is not None:
        try:
            detail = str(json.loads(e.response.body or b"{}").get("message") or "")
        except ValueError:
            pass
    log.error("The hub refused to mint an identity: %s %s", e.code, detail)
    return APIError(
        502,
        f"The hub refused to mint this server's identity ({e.code}: {detail or e}). An admin "
        "should check that the mlfactory-service role holds the 'tokens' scope and that "
        "data.identity.lifetime is within JupyterHub.token_expires_in_max_seconds.",
    )


class MintHandler(IdentityHandler):
    async def post(self) -> None:
        user, server = await self.server(running=True)
        try:
            answer = await self.mint.mint(user, server)
        except HubUnavailable:
            raise APIError(503, HUB_DOWN) from None
        except HTTPClientError as e:
            raise hub_refused(e) from None
        self.write_json(answer, status=201)

    async def delete(self) -> None:
        # the server is stopping: its token is still valid until the hub has stopped it
        user, server = await self.server(running=False)
        try:
            count = await self.mint.revoke_all(user, server)
        except HubUnavailable:
            raise APIError(503, HUB_DOWN) from None
        self.write_json({"revoked": count})


class RevokeHandler(IdentityHandler):
    async def delete(self, token_id: str) -> None:
        user, server = await self.server(running=False)
        try:
            done = await self.mint.revoke(user, server, token_id)
        except HubUnavailable:
            raise APIError(503, HUB_DOWN) from None
        if not done:
            raise APIError(404, f"No identity {token_id} of this server (already revoked?).")
        self.write_json({"revoked": 1})


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/api/identity", MintHandler),
    (r"/api/identity/(a[a-z0-9]{1,31})", RevokeHandler),
]
