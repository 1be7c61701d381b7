"""Fixtures for data-credential tests: a real PostgreSQL warehouse (``warehouse.py``) and
the platform service with a data broker around it, beside the stand-in hub; test modules
import the fixtures they use."""

from __future__ import annotations

import time

import pytest
from jupyterhub.services.auth import HubOAuth
from mlfactory.service.app import make_app
from mlfactory.service.data_broker import DataBroker, make_drivers
from tornado.httpserver import HTTPServer

from ..pg import PostgresUnavailable
from ..ports import free_port
from ..service.helpers import PREFIX, SECRET, Clock, Service, platform_with
from ..service.pg_fixture import unavailable
from .warehouse import prepare, stats_cluster, store_config

STARTED = "2026-11-10T11:00:00Z"


@pytest.fixture(scope="module")
def warehouse():
    try:
        cluster = stats_cluster()
    except PostgresUnavailable as e:
        unavailable(str(e))
    try:
        yield prepare(cluster)
    finally:
        cluster.stop()


@pytest.fixture
def now_clock() -> Clock:
    # PostgreSQL checks VALID UNTIL against its own clock: start from the real time once,
    # then tests move this clock instead of sleeping
    return Clock(time.time())


@pytest.fixture
async def stores_service(make_accountant, fake_hub, hub_state, now_clock):
    """start(stores, environ) → the service (with a data broker over ``stores``, admin
    secrets from ``environ``) on a free port, and the broker."""
    made: list[tuple[HTTPServer, DataBroker]] = []

    async def start(stores: list[dict], environ: dict[str, str]) -> tuple[Service, DataBroker]:
        # no default group: a user in none of the groups is granted nothing here
        # These tests are about the broker: the stand-in hub's server tokens ask directly
        # (managed identities through a real hub: tests/e2e/test_identity_rotation.py).
        platform = platform_with(
            data_stores=stores,
            default_group=None,
            data={"identity": {"accept_server_token": True}},
        )
        accountant = make_accountant(platform, fake_hub)
        drivers = make_drivers(platform, environ=environ)
        broker = DataBroker(
            platform, accountant.store.engine, drivers, hub=accountant.hub, clock=now_clock
        )
        await broker.check_all()
        hub_auth = HubOAuth(
            api_url=fake_hub,
            api_token="service-token",
            base_url=PREFIX,
            hub_prefix="/hub/",
            oauth_client_id="service-mlfactory",
            access_scopes={"access:services!service=mlfactory"},
            cache_max_age=0,
        )
        app = make_app(accountant, hub_auth, prefix=PREFIX, secret=SECRET, data_broker=broker)
        port = free_port()
        server = HTTPServer(app)
        server.listen(port, "127.0.0.1")
        made.append((server, broker))
        url = f"http://127.0.0.1:{port}{PREFIX.rstrip('/')}"
        return Service(url, accountant, hub_state, None), broker

    yield start
    for server, broker in made:
        server.stop()
        await broker.tick()  # whatever a test left running: dropped like a stop would
        broker.close()


@pytest.fixture
def data_service(warehouse, stores_service):
    """start(**store_over) → the service with the warehouse as its one managed store."""

    async def start(**store_over) -> tuple[Service, DataBroker]:
        store = store_config(warehouse, **store_over)
        return await stores_service([store], {"DW_ADMIN": warehouse.admin_secret})

    return start


def user_with_server(hub, name: str, groups: tuple[str, ...], server: str = "") -> str:
    """A user whose server runs; returns that server's own token (the hub-given scope)."""
    hub.add_user(name, token=f"personal-{name}", groups=groups)
    token = f"server-{name}-{server}"
    hub.tokens[token] = {
        **hub.tokens[f"personal-{name}"],
        "scopes": ["access:services!service=mlfactory", f"access:servers!server={name}/{server}"],
    }
    hub.run_server(name, server, None, STARTED)
    return token


def stop_server(hub, name: str, server: str = "") -> None:
    del hub.users[name]["servers"][server]
