"""Data connections' routes: a running server asks for its store credentials with its
managed identity, a user lists their connections, and admins read the audit.

The identity is a short-lived hub token the service minted for that one server and the
server replaces while it runs (``identity``, ``identity_api``); the hub says whether it is
still valid and whose it is, and whether that server runs now. The server's own long-lived
token is accepted only where ``data.identity.accept_server_token`` says so. Rules:
``data_grants``; work: ``data_broker``.
"""

from __future__ import annotations

import logging
from typing import Any

from mlfactory.hub.platform_schema import DataIdentity
from tornado.httpclient import HTTPClientError

from .base import APIError, UserHandler
from .data_broker import DataBroker, NoGrant, StoreUnavailable, UnknownStore
from .identity import NotAnIdentity, expired_message, token_server
from .identity_mint import HubUnavailable, identity_mint
from .scopes import USAGE_READ

__all__ = ["token_server"]  # kept importable from here: its tests and older callers

log = logging.getLogger("mlfactory.service.data")


class DataHandler(UserHandler):
    @property
    def broker(self) -> DataBroker:
        broker = self.settings.get("data_broker")
        if broker is None:
            raise APIError(404, "No data stores are managed by this platform.")
        return broker

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 503:  # the store's admin connection: worth a retry shortly
            self.set_header("Retry-After", "60")
        super().write_error(status_code, **kwargs)


class CredentialsHandler(DataHandler):
    """POST: credentials for the calling server on one store."""

    async def prepare(self) -> None:
        try:
            await super().prepare()
        except APIError as e:
            # the hub no longer accepts the token: most often an identity past its expiry
            unknown_token = e.status_code == 403 and e.message.startswith("Authenticate")
            if not (unknown_token and self.request.headers.get("Authorization")):
                raise
            raise APIError(401, expired_message(self.identity.rotate)) from None

    @property
    def identity(self) -> DataIdentity:
        return self.accountant.config.data.identity

    async def caller_server(self) -> str:
        """The server the caller's token speaks for: its managed identity, or (where
        ``data.identity.accept_server_token`` allows) the server's own token."""
        why = "the token does not name exactly one of your servers"
        mint = identity_mint(self.settings)
        if mint is not None:
            try:
                return await mint.recognise(self.model)
            except NotAnIdentity as e:
                why = str(e)
            except HubUnavailable:
                raise APIError(
                    503, "The hub cannot be reached to check this server's identity; try again."
                ) from None
            except HTTPClientError as e:
                log.error("The hub refused to describe token %s: %s", self.model["token_id"], e)
                raise APIError(
                    502,
                    f"The hub refused to describe this token ({e.code}); an admin should check "
                    "that the mlfactory-service role holds the 'tokens' scope.",
                ) from None
        server_name = token_server(self.model)
        if (
            server_name is not None
            and self.identity.accept_server_token
            and self.model.get("kind", "user") == "user"
        ):
            return server_name
        also = (
            " (this platform also accepts the server's own token, JUPYTERHUB_API_TOKEN)"
            if self.identity.accept_server_token
            else ""
        )
        raise APIError(
            403,
            "Data credentials are issued to a running server, for its managed identity "
            f"({why}): call mlfactory.data.connect(...) in a notebook of your server, which "
            f"reads the identity from MLFACTORY_IDENTITY_FILE{also}.",
        )

    async def post(self, store: str) -> None:
        user = self.model["name"]
        server_name = await self.caller_server()
        hub = self.accountant.hub
        fresh = await hub.user(user) if hub is not None else None
        server = ((fresh or {}).get("servers") or {}).get(server_name) or {}
        if not server.get("ready"):
            raise APIError(
                403, f"The server {server_name or '(default)'!r} of {user} is not running."
            )
        groups = list(fresh.get("groups") or [])
        try:
            issued = await self.broker.issue(store, user, server_name, groups)
        except UnknownStore as e:
            raise APIError(404, str(e)) from None
        except NoGrant as e:
            raise APIError(403, str(e)) from None
        except StoreUnavailable as e:
            raise APIError(503, str(e)) from None
        self.write_json(issued, status=201)


class ConnectionsHandler(DataHandler):
    """GET: the managed stores the caller's groups are granted (for the Data panel)."""

    async def get(self) -> None:
        groups = await self.my_groups()
        self.write_json({"connections": self.broker.connections(groups)})


class UsageHandler(DataHandler):
    """GET ?user=&group=&store=: who used which store, when and how much."""

    async def get(self) -> None:
        v = self.require(USAGE_READ)
        users = None
        if not v.everyone:
            members = await self.accountant.members()
            users = set(v.users) | {u for u, gs in members.items() if v.groups & set(gs)}
        filters = {}
        for key in ("user", "group", "store"):
            value = self.get_argument(key, None)
            if value is not None and not 0 < len(value) <= 255:
                raise APIError(400, f"{key}: 1-255 characters", field=key)
            filters[key] = value
        rows = await self.broker.usage(**filters, users=users)
        self.write_json({"usage": rows})


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/api/data/connections", ConnectionsHandler),
    (r"/api/data/usage", UsageHandler),
    (r"/api/data/([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)/credentials", CredentialsHandler),
]
