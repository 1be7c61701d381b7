"""Fixtures for the platform service, a pytest plugin (``pytest_plugins`` in
``tests/conftest.py``) so that tests of the parts that call the service (the CLI, the user's
server) get the same ones: a real database (SQLite; PostgreSQL in ``pg_fixture``), an
injected clock, and the service's HTTP app around the stand-in hub (``tests/fakehub.py``:
``hub_state``, ``fake_hub``). The real hub is exercised by the end-to-end tests.

A directory whose ``conftest.py`` has a fixture of the same name (``tests/hub``: ``clock``,
``store``) overrides these there.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from jupyterhub.services.auth import HubOAuth
from mlfactory.hub.platform_config import PACKAGED_CONFIG, PlatformConfig, load_platform_config
from mlfactory.service.accounting import Accountant
from mlfactory.service.alerts import Notifier
from mlfactory.service.app import make_app
from mlfactory.service.culler import Culler
from mlfactory.service.hubapi import HubAPI
from mlfactory.service.store import Store
from mlfactory.spawner.journal import Journal
from tornado.httpserver import HTTPServer

from tests.ports import free_port

from .helpers import PREFIX, SECRET, Clock, Service, service_store


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'platform.sqlite'}"


@pytest.fixture
def store(db_url) -> Iterator[Store]:
    yield from service_store(db_url)


@pytest.fixture
def platform() -> PlatformConfig:
    return load_platform_config(PACKAGED_CONFIG)


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
