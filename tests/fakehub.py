"""The one stand-in for JupyterHub's REST API in the tests and the benchmarks.

A pytest plugin (``pytest_plugins`` in ``tests/conftest.py``): ``hub_state`` is what the hub
knows and ``fake_hub`` serves it at ``http://127.0.0.1:<port>/hub/api``. A test makes the
hub say anything by changing ``hub_state``. Benchmarks use ``HubState`` and ``serve_fake_hub``.

It answers the calls the platform service makes as JupyterHub 6 does (``apihandlers/base.py``,
``users.py``, ``groups.py``): ``/users`` and ``/groups`` in pages only for
``Accept: application/jupyterhub-pagination+json`` (else a plain list cut at
``api_page_max_limit``), ``limit`` capped, ``state=active|ready|inactive``,
``include_stopped_servers``, the models' keys, JSON errors and the same status codes.
``tests/test_fakehub_fidelity.py`` sends the same requests to it and to a real hub and fails
when the answers differ.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from http.client import responses
from typing import Any
from urllib.parse import parse_qs, urlencode, urlparse, urlunparse

import pytest
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.netutil import bind_sockets

PAGINATION = "application/jupyterhub-pagination+json"
CREATED = "2026-01-01T00:00:00.000000Z"  # every stand-in user's ``created``
# What JupyterHub expands the platform service's role to (GET /user with its token).
SERVICE_SCOPES = [
    "admin:server_state", "delete:servers", "list:groups", "list:users", "read:groups",
    "read:groups:name", "read:servers", "read:users", "read:users:activity",
    "read:users:groups", "read:users:name", "servers", "start:servers",
]  # fmt: skip


@dataclass
class HubState:
    """What the stand-in hub says: tokens → user models, users, groups; and what it was asked."""

    tokens: dict[str, dict] = field(default_factory=dict)
    users: dict[str, dict] = field(default_factory=dict)
    groups: dict[str, list[str]] = field(default_factory=dict)
    stopped: list[tuple[str, str]] = field(default_factory=list)
    down: bool = False
    # JupyterHub's api_page_default_limit / api_page_max_limit
    page_default_limit: int = 50
    page_max_limit: int = 200
    allow_named_servers: bool = True
    # servers whose stop the hub refuses (answers 500 and leaves running)
    refuse_stop: set[tuple[str, str]] = field(default_factory=set)
    # servers whose spawner takes longer to stop than the hub's ``slow_stop_timeout``: the
    # DELETE answers 202 and the server stays ``pending: "stop"`` until ``finish_stops()``
    slow_stop: set[tuple[str, str]] = field(default_factory=set)
    # every request answered, as (method, path without the query)
    requests: list[tuple[str, str]] = field(default_factory=list)
    # the platform service's API tokens ("t": the one the culling tests give the culler)
    service_name: str = "mlfactory"
    service_tokens: set[str] = field(default_factory=lambda: {"service-token", "t"})

    def add_user(
        self,
        name: str,
        *,
        token: str | None = None,
        admin: bool = False,
        groups: tuple[str, ...] = (),
        scopes: tuple[str, ...] = (),
    ) -> str:
        token = token or f"token-{name}"
        for g in groups:
            self.groups.setdefault(g, []).append(name)
        self.users[name] = {"name": name, "admin": admin, "groups": list(groups), "servers": {}}
        self.tokens[token] = {
            "kind": "user",
            "name": name,
            "admin": admin,
            "groups": list(groups),
            "scopes": ["access:services!service=mlfactory", *scopes],
        }
        return token

    def run_server(
        self,
        user: str,
        server_name: str,
        ledger: dict | None,
        started: str,
        last_activity: str | None = None,
    ) -> None:
        self.users[user]["servers"][server_name] = {
            "name": server_name,
            "ready": True,
            "pending": None,
            "url": f"/user/{user}/{server_name + '/' if server_name else ''}",
            "started": started,
            "last_activity": last_activity or started,
            "state": {"mlfactory": {"ledger": ledger}} if ledger else {},
        }

    def finish_stops(self) -> None:
        """The slow stops end: their servers are stopped, as a finished stop leaves them."""
        for user in self.users.values():
            for server in user["servers"].values():
                if server.get("pending") == "stop":
                    server.update(ready=False, pending=None, started=None)

    # --- the models JupyterHub answers with (apihandlers/base.py) ---------------------------

    def server_model(self, user: str, name: str, server: dict | None = None) -> dict:
        """A server as ``server_model`` shows it to a token with ``admin:server_state``;
        keys a test left out get the values JupyterHub gives them."""
        server = server or {}
        url = f"/user/{user}/{name + '/' if name else ''}"
        progress = f"/hub/api/users/{user}/" + (f"servers/{name}" if name else "server")
        model = {
            "name": name,
            "display_name": name,
            "full_name": f"{user}/{name}",
            "last_activity": None,
            "started": None,
            "pending": None,
            "ready": False,
            "url": url,
            "user_options": {},
            "progress_url": f"{progress}/progress",
            "full_url": None,
            "full_progress_url": None,
            "state": {},
            **server,
        }
        model.setdefault("stopped", not (model["ready"] or model["pending"]))
        return model

    def user_model(self, user: dict, include_stopped: bool = False) -> dict:
        """A user as the service's scopes show it (read:users, read:servers and state)."""
        name = user["name"]
        servers = {
            n: self.server_model(name, n, s)
            for n, s in user["servers"].items()
            if include_stopped or active(s)
        }
        if include_stopped:
            # every user has a default server, listed stopped until it first runs
            servers.setdefault("", self.server_model(name, ""))
        default = user["servers"].get("") or {}
        activity = [s["last_activity"] for s in user["servers"].values() if s.get("last_activity")]
        return {
            "kind": "user",
            "name": name,
            "admin": user.get("admin", False),
            "roles": ["admin", "user"] if user.get("admin") else ["user"],
            "groups": list(user.get("groups", [])),
            "server": (default.get("url") or f"/user/{name}/") if default.get("ready") else None,
            "pending": default.get("pending"),
            "created": user.get("created", CREATED),
            "last_activity": user.get("last_activity") or max(activity, default=None),
            "servers": servers,
            "user_info": None,
        }

    def group_model(self, name: str) -> dict:
        return {"kind": "group", "name": name, "users": list(self.groups[name]), "properties": {}}

    def token_owner(self, token: str) -> tuple[str, dict] | None:
        """("service", {}) or ("user", the token's model) for a token the hub knows."""
        if token in self.service_tokens:
            return "service", {}
        if token in self.tokens:
            return "user", self.tokens[token]
        return None

    def self_model(self, token: str) -> dict | None:
        """GET /user: the token's owner, what its scopes let it see of itself, and the scopes."""
        owner = self.token_owner(token)
        if owner is None:
            return None
        if owner[0] == "service":
            return {
                "kind": "service",
                "name": self.service_name,
                "admin": False,
                "token_id": "a0",
                "session_id": None,
                "scopes": list(SERVICE_SCOPES),
            }
        model = owner[1]
        return {
            "kind": "user",
            "name": model["name"],
            "admin": model.get("admin", False),
            "groups": list(model.get("groups", [])),
            "user_info": None,
            "token_id": model.get("token_id", f"a{list(self.tokens).index(token) + 1}"),
            "session_id": None,
            "scopes": list(model.get("scopes", [])),
        }


def active(server: dict) -> bool:
    """JupyterHub's ``state=active``: running, or on its way (a pending spawn or stop)."""
    return bool(server.get("ready") or server.get("pending"))


def fake_hub_app(state: HubState) -> web.Application:
    class Base(web.RequestHandler):
        def prepare(self):
            state.requests.append((self.request.method, self.request.path))
            if state.down:
                raise web.HTTPError(503)
            self.set_header("Content-Type", "application/json")

        def write_error(self, status_code: int, **kwargs: Any) -> None:
            """JupyterHub's JSON errors: the HTTPError's message, else null."""
            exception = (kwargs.get("exc_info") or (None, None))[1]
            message = responses.get(status_code, "Unknown Error")
            if isinstance(exception, web.HTTPError):
                message = exception.log_message
                if message and exception.args:
                    message = message % exception.args
            self.set_header("Content-Type", "application/json")
            self.finish(json.dumps({"status": status_code, "message": message or None}))

        def token(self) -> str:
            kind, _, token = self.request.headers.get("Authorization", "").partition(" ")
            return token.strip() if kind.lower() in ("token", "bearer") else ""

        def require_service(self, scope: str) -> None:
            """What ``needs_scope`` answers: 403 without a known token or without the scope
            (user tokens here carry only their own identity and service access)."""
            owner = state.token_owner(self.token())
            if owner is None:
                raise web.HTTPError(403, "Missing or invalid credentials.")
            if owner[0] != "service":
                raise web.HTTPError(
                    403, f"Action is not authorized with current scopes; requires any of [{scope}]"
                )

        def include_stopped(self) -> bool:
            return self.get_argument("include_stopped_servers", "0").lower() not in {"0", "false"}

        def pagination(self) -> tuple[int, int]:
            """``get_api_pagination``: the default page is the cap unless pages were asked for."""
            default = (
                state.page_default_limit if self.accepts_pagination() else state.page_max_limit
            )
            try:
                offset = abs(int(self.get_argument("offset", "0")))
                limit = abs(int(self.get_argument("limit", str(default))))
            except ValueError:
                raise web.HTTPError(
                    400, "Invalid argument type, offset and limit must be integers"
                ) from None
            return offset, min(max(limit, 1), state.page_max_limit)

        def accepts_pagination(self) -> bool:
            accept = self.request.headers.get("Accept", "")
            return PAGINATION in {a.strip().lower() for a in accept.split(",")}

        def paginated(self, page: list, offset: int, limit: int, total: int) -> None:
            """``paginated_model`` for the pagination media type; else the plain page."""
            if not self.accepts_pagination():
                self.finish(json.dumps(page))
                return
            nxt = None
            if offset + limit < total:
                url = urlparse(self.request.full_url())
                query = parse_qs(url.query, keep_blank_values=True)
                query.update(offset=[offset + limit], limit=[limit])
                url = urlunparse(url._replace(query=urlencode(query, doseq=True)))
                nxt = {"offset": offset + limit, "limit": limit, "url": url}
            pagination = {"offset": offset, "limit": limit, "total": total, "next": nxt}
            self.finish(json.dumps({"items": page, "_pagination": pagination}))

    class UserH(Base):
        def get(self):
            model = state.self_model(self.token())
            if model is None:
                raise web.HTTPError(403)
            self.finish(json.dumps(model))

    class RootH(Base):
        def get(self):
            self.finish(json.dumps({"version": "6.1.1"}))

    class UsersH(Base):
        def get(self):
            self.require_service("list:users")
            which = self.get_argument("state", None)
            offset, limit = self.pagination()
            users = list(state.users.values())
            if which in ("active", "ready"):
                users = [u for u in users if any(map(active, u["servers"].values()))]
            elif which == "inactive":
                users = [u for u in users if not any(map(active, u["servers"].values()))]
            elif which:
                raise web.HTTPError(400, f"Unrecognized state filter: {which!r}")
            page = users[offset : offset + limit]
            if which == "ready":  # filtered after the page is cut, as JupyterHub does
                page = [u for u in page if any(s.get("ready") for s in u["servers"].values())]
            include = self.include_stopped()
            models = [state.user_model(u, include) for u in page]
            self.paginated(models, offset, limit, len(users))

    class OneUserH(Base):
        def get(self, name):
            self.require_service("read:users")
            if name not in state.users:
                raise web.HTTPError(404)
            self.finish(json.dumps(state.user_model(state.users[name], self.include_stopped())))

    class GroupsH(Base):
        def get(self):
            self.require_service("list:groups")
            offset, limit = self.pagination()
            names = list(state.groups)
            page = [state.group_model(g) for g in names[offset : offset + limit]]
            self.paginated(page, offset, limit, len(names))

    class ServerH(Base):
        def delete(self, user, server_name=""):
            """Stop a server (``remove``: and forget a named one), as UserServerAPIHandler."""
            self.require_service("delete:servers")
            remove = bool((json.loads(self.request.body or b"null") or {}).get("remove"))
            if user not in state.users:
                raise web.HTTPError(404)
            servers = state.users[user]["servers"]
            if server_name:
                if not state.allow_named_servers:
                    raise web.HTTPError(400, "Named servers are not enabled.")
                if server_name not in servers:
                    raise web.HTTPError(404, f"{user} has no server named '{server_name}'")
            elif remove:
                raise web.HTTPError(400, "Cannot delete the default server")
            if (user, server_name) in state.refuse_stop:
                raise web.HTTPError(500)  # the spawner failed to stop it: it keeps running
            server = servers.get(server_name) or {}
            if server.get("pending") == "stop" or (
                (user, server_name) in state.slow_stop and active(server)
            ):
                # the stop goes on after the answer (``slow_stop_timeout``): listed as stopping
                if server.get("pending") != "stop":
                    state.stopped.append((user, server_name))
                    server.update(ready=False, pending="stop")
                self.set_header("Content-Type", "text/plain")  # as JupyterHub's empty answer
                self.set_status(202)
                self.finish()
                return
            state.stopped.append((user, server_name))
            if remove:
                servers.pop(server_name, None)
            elif server_name in servers and active(servers[server_name]):
                # stopped but kept: ``include_stopped_servers`` lists it
                servers[server_name].update(ready=False, pending=None, started=None)
            self.set_status(204)
            self.finish()

    return web.Application(
        [
            (r"/hub/api/?", RootH),
            (r"/hub/api/user", UserH),
            (r"/hub/api/users/([^/]+)/server", ServerH),
            (r"/hub/api/users", UsersH),
            (r"/hub/api/users/([^/]+)", OneUserH),
            (r"/hub/api/users/([^/]+)/servers/([^/]*)", ServerH),
            (r"/hub/api/groups", GroupsH),
        ]
    )


def serve_fake_hub(state: HubState) -> tuple[str, HTTPServer]:
    """Serve ``state`` on a free local port: (the API URL, the server to ``stop()``)."""
    sockets = bind_sockets(0, "127.0.0.1")
    server = HTTPServer(fake_hub_app(state))
    server.add_sockets(sockets)
    return f"http://127.0.0.1:{sockets[0].getsockname()[1]}/hub/api", server


@pytest.fixture
def hub_state() -> HubState:
    return HubState()


@pytest.fixture
async def fake_hub(hub_state: HubState) -> AsyncIterator[str]:
    """The stand-in hub's API URL (``.../hub/api``), serving ``hub_state``."""
    url, server = serve_fake_hub(hub_state)
    yield url
    server.stop()
