"""``mlfactory.data.connect`` (data_connect/): a notebook's engine on a managed PostgreSQL
store, its credentials asked of the real platform service with the server's own token and
asked again before they run out; refusals and an unreachable service, as a user sees them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
import sqlalchemy as sa
from mlfactory.data import (
    DataAccessDenied,
    DataServiceUnavailable,
    ServiceCredentials,
    connect,
    refresh_due,
)
from mlfactory.data.client import postgres_engine

from ..ports import free_port
from ..service.helpers import Clock
from . import fixtures
from .fixtures import user_with_server

warehouse = fixtures.warehouse
data_service = fixtures.data_service
stores_service = fixtures.stores_service
now_clock = fixtures.now_clock

STORES = json.dumps(
    [
        {"name": "warehouse", "kind": "postgresql", "url": "postgresql:///dw", "managed": True},
        {"name": "landing", "kind": "filesystem", "url": "/srv/landing"},
    ]
)


def test_refresh_in_the_last_quarter_never_closer_than_a_minute():
    assert not refresh_due(expires_at=4600, now=3000, ttl=3600)
    assert refresh_due(expires_at=4600, now=3700, ttl=3600)
    assert refresh_due(expires_at=200, now=141, ttl=100)


def whoami(engine: sa.Engine) -> str:
    with engine.connect() as conn:
        return conn.execute(sa.text("SELECT current_user")).scalar()


async def test_connect_returns_an_engine_that_reads_the_granted_table(data_service, hub_state):
    svc, _ = await data_service()
    token = user_with_server(hub_state, "alice", ("data-science",))

    def work():  # connect() is blocking, as in a kernel
        engine = connect(
            "warehouse", environ={"MLFACTORY_DATA_STORES": STORES}, service_url=svc.url,
            token=token,
        )  # fmt: skip
        with engine.connect() as conn:
            rows = conn.execute(sa.text("SELECT id FROM a.orders ORDER BY id")).all()
        return [r[0] for r in rows], whoami(engine)

    ids, user = await asyncio.to_thread(work)
    assert ids == [1, 2, 3, 4, 5]
    assert user.startswith("mlf_alice_")
    with pytest.raises(LookupError, match="yours: warehouse, landing"):
        connect("nowhere", environ={"MLFACTORY_DATA_STORES": STORES})


async def test_new_connections_use_fresh_credentials_before_expiry(data_service, hub_state):
    svc, _ = await data_service(ttl="10m")
    token = user_with_server(hub_state, "bob", ("data-science",))
    clock = Clock(0.0)  # the notebook's clock; the service's is its own

    def work():
        creds = ServiceCredentials("warehouse", service_url=svc.url, token=token, clock=clock)
        engine = postgres_engine(creds, poolclass=sa.pool.NullPool)
        first = whoami(engine)
        clock.advance(60)  # early in its life: the same role
        same = whoami(engine)
        clock.advance(8 * 60)  # in the last quarter (and within a minute... of 10 min)
        fresh = whoami(engine)
        return first, same, fresh

    first, same, fresh = await asyncio.to_thread(work)
    assert first == same and fresh != first and fresh.startswith("mlf_bob_")


async def test_refusals_and_an_unreachable_service(data_service, hub_state):
    svc, _ = await data_service()
    carol = user_with_server(hub_state, "carol", ("marketing",))
    dave = user_with_server(hub_state, "dave", ("data-science",))

    def work():
        with pytest.raises(DataAccessDenied, match="'warehouse'"):
            ServiceCredentials("warehouse", service_url=svc.url, token=carol).get()
        engine = postgres_engine(
            ServiceCredentials("warehouse", service_url=svc.url, token=dave),
            poolclass=sa.pool.NullPool,
        )
        down = f"http://127.0.0.1:{free_port()}/services/mlfactory"
        with pytest.raises(DataServiceUnavailable, match="cannot be reached"):
            ServiceCredentials("warehouse", service_url=down, token=dave).get()
        # credentials already issued keep working while the service is away
        return whoami(engine)

    assert (await asyncio.to_thread(work)).startswith("mlf_dave_")


def builtin_loader():
    """The built-in component's entry point, loaded from its source as the catalog does."""
    import importlib.util

    from mlfactory.components import builtin  # noqa: F401  (the folder the source lives in)

    path = Path(builtin.__path__[0]) / "load_from_datastore" / "load_from_datastore.py"
    spec = importlib.util.spec_from_file_location("mlf_test_load_from_datastore", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.load_from_datastore


async def test_load_from_datastore_takes_the_same_path(data_service, hub_state, monkeypatch):
    svc, _ = await data_service()
    token = user_with_server(hub_state, "erin", ("data-science",))
    monkeypatch.setenv("MLFACTORY_SERVICE_URL", svc.url)
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", token)
    load = builtin_loader()
    stores = json.loads(STORES)

    def work():
        frame = load("warehouse", query="SELECT id, amount FROM a.orders", stores=stores)
        with pytest.raises(RuntimeError, match="permission denied"):
            load("warehouse", query="SELECT * FROM b.salaries", stores=stores)
        return frame

    frame = await asyncio.to_thread(work)
    assert list(frame["amount"]) == [10, 20, 30, 40, 50]


def test_the_service_address_may_be_bare_or_carry_its_prefix():
    bare = ServiceCredentials("dw", service_url="http://127.0.0.1:1", token="t")
    full = ServiceCredentials("dw", service_url="http://127.0.0.1:1/services/mlfactory/", token="t")
    assert bare.url == full.url == "http://127.0.0.1:1/services/mlfactory/api/data/dw/credentials"
    with pytest.raises(DataServiceUnavailable, match="http"):
        ServiceCredentials("dw", service_url="file:///etc/passwd", token="t")
    with pytest.raises(DataServiceUnavailable, match="JUPYTERHUB_API_TOKEN"):
        ServiceCredentials("dw", service_url="http://127.0.0.1:1", token="")


def test_the_panel_snippets_quote_names():
    from mlfactory.server.data import snippet

    pg = snippet({"name": "warehouse", "kind": "postgresql"})
    assert "mlfactory.data.connect('warehouse')" in pg
    s3 = snippet({"name": "lake", "kind": "s3", "prefixes": ["lake/ops/"]})
    assert "Bucket='lake', Prefix='ops/'" in s3
    odd = snippet({"name": "x'); import os; ('", "kind": "postgresql"})
    assert "connect(\"x'); import os; ('\")" in odd
