"""Data connections' routes: a running server asks for its store credentials with its own
hub token (managed identity), a user lists their connections, and admins read the audit.

The hub says who holds the token and which server it belongs to (the server token's
``access:servers!server=<user>/<name>`` scope, set by the hub when it starts the server and
revoked when it stops), and whether that server runs now. Rules: ``data_grants``; work:
``data_broker``.
"""

from __future__ import annotations

import logging
from typing import Any

from .base import APIError, UserHandler
from .data_broker import DataBroker, NoGrant, StoreUnavailable, UnknownStore
from .permissions import USAGE_READ

SERVER_SCOPE = "access:servers!server="
log = logging.getLogger("mlfactory.service.data")


def token_server(model: dict[str, Any]) -> str | None:
    """The server a token belongs to, from the scope the hub gives a server's own token
    (``access:servers!server=alice/`` → ``""``, ``.../alice/gpu`` → ``"gpu"``); None for
    any other token (a user's personal token, a browser cookie)."""
    found = set()
    for scope in model.get("scopes") or ():
        if scope.startswith(SERVER_SCOPE):
            owner, sep, name = scope[len(SERVER_SCOPE) :].partition("/")
            if sep and owner == model.get("name"):
                found.add(name)
    return found.pop() if len(found) == 1 else None


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

    async def post(self, store: str) -> None:
        user = self.model["name"]
        server_name = token_server(self.model)
        if server_name is None or self.model.get("kind", "user") != "user":
            raise APIError(
                403,
                "Data credentials are issued to a running server: ask with the server's own "
                "token (JUPYTERHUB_API_TOKEN inside it), e.g. mlfactory.data.connect(...).",
            )
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
