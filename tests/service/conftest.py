"""Fixtures for the platform service: a real database (SQLite; PostgreSQL where marked), an
injected clock, and a stand-in for the hub's REST API that answers the calls the service
makes (``/user`` for token checks, ``/users``, ``/groups``, stopping servers). The real hub
is exercised by the end-to-end tests; this stand-in lets a test make the hub say anything.
"""

from __future__ import annotations

import json
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlencode

import pytest
from jupyterhub.services.auth import HubOAuth
from mlfactory.hub.platform_config import PACKAGED_CONFIG, PlatformConfig, load_platform_config
from mlfactory.hub.service.accounting import Accountant
from mlfactory.hub.service.alerts import Notifier
from mlfactory.hub.service.app import make_app
from mlfactory.hub.service.culler import Culler
from mlfactory.hub.service.db import make_engine, upgrade
from mlfactory.hub.service.hubapi import HubAPI
from mlfactory.hub.service.store import Store
from mlfactory.spawner.journal import Journal
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httpserver import HTTPServer

SECRET = "test-service-secret"
PREFIX = "/services/mlfactory/"
T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp()


class Clock:
    """Injected time: tests move it instead of sleeping."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set(self, t: float) -> None:
        self.t = t


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def platform_with(**changes: Any) -> PlatformConfig:
    """The shipped example with top-level keys replaced (``changes`` are plain YAML data)."""
    import yaml
    from mlfactory.hub.platform_config import parse_platform_config

    data = yaml.safe_load(PACKAGED_CONFIG.read_text())
    data.update(changes)
    return parse_platform_config(data, "test.yaml")


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
    # servers whose stop the hub refuses (answers 500 and leaves running)
    refuse_stop: set[tuple[str, str]] = field(default_factory=set)

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


PAGINATION = "application/jupyterhub-pagination+json"


def fake_hub_app(state: HubState) -> web.Application:
    class Base(web.RequestHandler):
        def prepare(self):
            if state.down:
                raise web.HTTPError(503)
            self.set_header("Content-Type", "application/json")

        def paginated(self, items: list) -> None:
            """What JupyterHub's list endpoints answer (apihandlers/base.py): pages only for
            the pagination media type; otherwise a plain list silently cut at the limit."""
            accepts = {a.strip().lower() for a in self.request.headers.get("Accept", "").split(",")}
            paginate = PAGINATION in accepts
            default = state.page_default_limit if paginate else state.page_max_limit
            offset = abs(int(self.get_argument("offset", "0")))
            limit = min(max(abs(int(self.get_argument("limit", str(default)))), 1),
                        state.page_max_limit)  # fmt: skip
            page = items[offset : offset + limit]
            if not paginate:
                self.finish(json.dumps(page))
                return
            nxt = None
            if offset + limit < len(items):
                query = {**{k: v[-1].decode() for k, v in self.request.query_arguments.items()},
                         "offset": offset + limit, "limit": limit}  # fmt: skip
                url = f"{self.request.protocol}://{self.request.host}{self.request.path}"
                nxt = {"offset": offset + limit, "limit": limit, "url": f"{url}?{urlencode(query)}"}
            pagination = {"offset": offset, "limit": limit, "total": len(items), "next": nxt}
            self.finish(json.dumps({"items": page, "_pagination": pagination}))

    class UserH(Base):
        def get(self):
            token = self.request.headers.get("Authorization", "").removeprefix("token ").strip()
            model = state.tokens.get(token)
            if model is None:
                raise web.HTTPError(403)
            self.finish(json.dumps(model))

    class RootH(Base):
        def get(self):
            self.finish(json.dumps({"version": "6.1.1"}))

    class UsersH(Base):
        def get(self):
            users = list(state.users.values())
            if self.get_argument("state", "") in ("active", "ready"):
                users = [u for u in users if u["servers"]]
            self.paginated(users)

    class OneUserH(Base):
        def get(self, name):
            if name not in state.users:
                raise web.HTTPError(404)
            self.finish(json.dumps(state.users[name]))

    class GroupsH(Base):
        def get(self):
            self.paginated([{"name": g, "users": u} for g, u in state.groups.items()])

    class ServerH(Base):
        def delete(self, user, server_name=""):
            if (user, server_name) in state.refuse_stop:
                raise web.HTTPError(500)  # the spawner failed to stop it: it keeps running
            state.stopped.append((user, server_name))
            state.users.get(user, {}).get("servers", {}).pop(server_name, None)
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


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'platform.sqlite'}"


@pytest.fixture
def store(db_url) -> Store:
    engine = make_engine(db_url)
    upgrade(engine)
    yield Store(engine)
    engine.dispose()


@pytest.fixture
def platform() -> PlatformConfig:
    return load_platform_config(PACKAGED_CONFIG)


@pytest.fixture
def hub_state() -> HubState:
    return HubState()


@pytest.fixture
async def fake_hub(hub_state):
    port = free_port()
    server = HTTPServer(fake_hub_app(hub_state))
    server.listen(port, "127.0.0.1")
    yield f"http://127.0.0.1:{port}/hub/api"
    server.stop()


@pytest.fixture
def journal(tmp_path) -> Journal:
    return Journal(tmp_path / "runtime" / "servers")


@pytest.fixture
def make_accountant(store, clock, journal):
    def make(platform: PlatformConfig, hub_url: str | None = None, **kw) -> Accountant:
        hub = HubAPI(hub_url, "service-token") if hub_url else None
        return Accountant(
            store,
            platform,
            hub=hub,
            journal=journal,
            clock=clock,
            notifier=kw.pop("notifier", None) or Notifier(platform.alerts),
            **kw,
        )

    return make


@dataclass
class Service:
    url: str
    accountant: Accountant
    hub: HubState
    culler: Culler

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        secret: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, dict]:
        headers = {}
        if token:
            headers["Authorization"] = f"token {token}"
        if secret:
            headers["Authorization"] = f"secret {secret}"
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        if data is None and method in ("POST", "PUT"):
            data = b""
        req = HTTPRequest(
            self.url + path,
            method=method,
            headers=headers,
            body=data,
            allow_nonstandard_methods=True,
            follow_redirects=False,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req)
        except HTTPClientError as e:
            resp = e.response
            assert resp is not None, e
        text = resp.body.decode() if resp.body else ""
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return resp.code, payload, dict(resp.headers)


@pytest.fixture
async def service(make_accountant, platform, fake_hub, hub_state):
    """The service's HTTP app on a free port, around a test accountant and the stand-in hub."""

    async def start(platform_cfg: PlatformConfig = platform) -> Service:
        accountant = make_accountant(platform_cfg, fake_hub)
        await accountant.start()
        hub_auth = HubOAuth(
            api_url=fake_hub,
            api_token="service-token",
            base_url=PREFIX,
            hub_prefix="/hub/",
            oauth_client_id="service-mlfactory",
            access_scopes={"access:services!service=mlfactory"},
            cache_max_age=0,
        )
        culler = Culler(
            accountant.store.engine,
            platform_cfg,
            hub=accountant.hub,
            hub_url=fake_hub,
            token="service-token",
            clock=accountant.clock,
        )
        port = free_port()
        app = make_app(accountant, hub_auth, prefix=PREFIX, secret=SECRET, culler=culler)
        server = HTTPServer(app)
        server.listen(port, "127.0.0.1")
        servers.append(server)
        return Service(
            f"http://127.0.0.1:{port}{PREFIX.rstrip('/')}", accountant, hub_state, culler
        )

    servers: list[HTTPServer] = []
    yield start
    for s in servers:
        s.stop()
