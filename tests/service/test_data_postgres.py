"""Short-lived per-server PostgreSQL roles, end to end through the platform service's HTTP
API, against a real PostgreSQL (tests/pg.py, with pg_stat_statements and SCRAM logins) and
the stand-in hub: grants per group, managed identity (the server's own token), expiry,
renewal, the drop at stop, the audit, and the start-up checks."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
import sqlalchemy as sa
from mlfactory.service.data_broker import DataBroker, DataStoresInvalid, make_drivers

from ..data import fixtures
from ..data.fixtures import stop_server, user_with_server
from ..data.warehouse import Warehouse, store_config
from .helpers import platform_with

# the data fixtures, as this module's own
warehouse = fixtures.warehouse
data_service = fixtures.data_service
stores_service = fixtures.stores_service
now_clock = fixtures.now_clock


def engine_for(issued: dict) -> sa.Engine:
    # what mlfactory.data.connect builds from the answer
    return sa.create_engine(issued["credentials"]["url"], poolclass=sa.pool.NullPool)


READ = {"a.orders": "SELECT * FROM a.orders", "b.salaries": "SELECT * FROM b.salaries"}


def count(engine: sa.Engine, table: str) -> int:
    with engine.connect() as conn:
        return len(conn.execute(sa.text(READ[table])).all())


async def test_a_user_of_group_a_reads_a_and_not_b(data_service, hub_state, warehouse):
    svc, _ = await data_service()
    alice = user_with_server(hub_state, "alice", ("data-science",))
    bob = user_with_server(hub_state, "bob", ("ml-engineering",))
    code, issued, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=alice)
    assert code == 201, issued
    assert issued["access"] == "read" and issued["credentials"]["user"].startswith("mlf_alice_")
    assert issued["expires_at"] - issued["issued_at"] <= 3600
    a = engine_for(issued)
    assert count(a, "a.orders") == 5
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        count(a, "b.salaries")
    code, issued_b, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=bob)
    b = engine_for(issued_b)
    assert count(b, "b.salaries") == 3
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        count(b, "a.orders")
    # a wrong password is refused: logins are real, not trusted
    bad = sa.engine.make_url(issued["credentials"]["url"]).set(password="guess")
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        sa.create_engine(bad, poolclass=sa.pool.NullPool).connect()


async def test_who_may_ask_and_what_they_are_told(data_service, hub_state):
    svc, _ = await data_service()
    carol = user_with_server(hub_state, "carol", ("nobody-granted",))
    code, body, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=carol)
    assert code == 403 and "'warehouse'" in body["error"] and "nobody-granted" in body["error"]
    dave = user_with_server(hub_state, "dave", ("data-science",))
    # a personal token is no server's identity
    code, body, _ = await svc.call("POST", "/api/data/warehouse/credentials", token="personal-dave")
    assert code == 403 and "JUPYTERHUB_API_TOKEN" in body["error"]
    code, body, _ = await svc.call("POST", "/api/data/nowhere/credentials", token=dave)
    assert code == 404 and "warehouse" in body["error"]
    code, body, _ = await svc.call("POST", "/api/data/warehouse/credentials")
    assert code == 403
    # the hub says the server stopped (its token would be revoked too): refused
    stop_server(hub_state, "dave")
    code, body, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=dave)
    assert code == 403 and "not running" in body["error"]
    # the Data panel's list: grants, no secrets
    code, body, _ = await svc.call("GET", "/api/data/connections", token="personal-dave")
    assert code == 200
    assert body["connections"] == [
        {
            "name": "warehouse",
            "kind": "postgresql",
            "description": "",
            "access": "read",
            "groups": ["data-science"],
            "prefixes": [],
            "ttl": 3600,
        }
    ]


async def test_credentials_expire(data_service, hub_state, now_clock, warehouse):
    svc, _ = await data_service()
    erin = user_with_server(hub_state, "erin", ("data-science",))
    # issued by a clock 70 minutes behind: VALID UNTIL lies 10 minutes in the past
    now_clock.advance(-70 * 60)
    code, issued, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=erin)
    assert code == 201
    with pytest.raises(sa.exc.OperationalError, match="password authentication failed"):
        engine_for(issued).connect()
    with warehouse.superuser() as conn:
        (until,) = conn.execute(
            "SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s",
            [issued["principal"]],
        ).fetchone()
    assert until == datetime.fromtimestamp(issued["expires_at"], UTC)


async def test_renewed_while_running_dropped_when_stopped(
    data_service, hub_state, now_clock, warehouse
):
    svc, broker = await data_service(ttl="10m")
    fred = user_with_server(hub_state, "fred", ("data-science",))
    _, first, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=fred)
    _, second, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=fred)
    assert first["expires_at"] - first["issued_at"] == 600
    assert len(warehouse.roles("mlf\\_fred\\_%")) == 2
    # past half its life the tick extends VALID UNTIL (the password stays the same)
    now_clock.advance(400)
    await broker.tick()
    with warehouse.superuser() as conn:
        (until,) = conn.execute(
            "SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", [first["principal"]]
        ).fetchone()
    assert until.timestamp() == pytest.approx(now_clock() + 600)
    engine = engine_for(first)
    conn = engine.connect()  # a session open while the server stops
    assert conn.execute(sa.text("SELECT count(*) FROM a.orders")).scalar() == 5
    stop_server(hub_state, "fred")
    await broker.tick()
    assert warehouse.roles("mlf\\_fred\\_%") == []
    with pytest.raises(sa.exc.OperationalError):  # its session was terminated first
        conn.execute(sa.text("SELECT 1"))
    conn.invalidate()
    with broker.engine.connect() as db:
        events = db.execute(
            sa.text(
                "SELECT event, count(*) FROM data_credential_events WHERE \"user\" = 'fred' "
                "GROUP BY event"
            )
        ).all()
    assert dict(events) == {"issue": 2, "renew": 2, "drop": 2}


async def test_the_audit_shows_queries_and_rows_read(data_service, hub_state, warehouse):
    svc, broker = await data_service()
    gina = user_with_server(hub_state, "gina", ("data-science",))
    hub_state.add_user("admin", token="admin-token", admin=True)
    hub_state.add_user("lead", token="lead-token", scopes=("custom:mlfactory:usage:read",))
    _, issued, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=gina)
    engine = engine_for(issued)
    for _ in range(3):
        assert count(engine, "a.orders") == 5
    code, body, _ = await svc.call("GET", "/api/data/usage?user=gina", token="admin-token")
    assert code == 200, body
    (row,) = body["usage"]
    assert row["store"] == "warehouse" and row["groups"] == ["data-science"]
    assert row["credentials"] == 1 and row["live"] == 1
    assert row["rows"] >= 15 and row["queries"] >= 3
    # the counts survive the drop (read before DROP ROLE)
    stop_server(hub_state, "gina")
    await broker.tick()
    _, body, _ = await svc.call(
        "GET", "/api/data/usage?group=data-science&store=warehouse", token="lead-token"
    )
    gina_row = next(r for r in body["usage"] if r["user"] == "gina")
    assert gina_row["rows"] == row["rows"] and gina_row["live"] == 0
    _, body, _ = await svc.call("GET", "/api/data/usage?group=ml-engineering", token="admin-token")
    assert all(r["user"] != "gina" for r in body["usage"])
    code, body, _ = await svc.call("GET", "/api/data/usage", token="personal-gina")
    assert code == 403 and "custom:mlfactory:usage:read" in body["error"]


async def test_a_user_whose_group_is_removed_loses_the_grant_at_the_next_issue(
    data_service, hub_state
):
    svc, _ = await data_service()
    hank = user_with_server(hub_state, "hank", ("data-science",))
    code, _, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=hank)
    assert code == 201
    # the next SSO login (or an admin) takes hank out of the group in the hub
    hub_state.users["hank"]["groups"] = []
    hub_state.groups["data-science"].remove("hank")
    code, body, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=hank)
    assert code == 403 and "'warehouse'" in body["error"]


async def test_a_failing_admin_connection_is_a_clear_503(data_service, hub_state, warehouse):
    svc, broker = await data_service()
    ivy = user_with_server(hub_state, "ivy", ("data-science",))
    with warehouse.superuser() as conn:
        conn.execute("ALTER ROLE mlf_admin PASSWORD 'rotated'")
    try:
        broker.drivers["warehouse"].close()  # the pool's open connections
        code, body, headers = await svc.call("POST", "/api/data/warehouse/credentials", token=ivy)
        assert code == 503 and "'warehouse'" in body["error"] and "Traceback" not in body["error"]
        assert "rotated" not in body["error"] and headers.get("Retry-After")
        with pytest.raises(DataStoresInvalid, match=r"data_stores\[0\]\.admin_credentials"):
            await broker.check_all()
    finally:
        with warehouse.superuser() as conn:
            conn.execute("ALTER ROLE mlf_admin PASSWORD 'admin-test-password'")


def test_start_up_names_the_key_of_what_does_not_work(warehouse: Warehouse):
    platform = platform_with(data_stores=[store_config(warehouse)])
    with pytest.raises(DataStoresInvalid) as e:
        make_drivers(platform, environ={})
    assert "data_stores[0].admin_credentials: warehouse: the environment variable DW_ADMIN" in str(
        e.value
    )
    odd = platform_with(data_stores=[store_config(warehouse, kind="teradata")])
    with pytest.raises(DataStoresInvalid, match=r"data_stores\[0\]\.kind: no driver for"):
        make_drivers(odd, environ={"DW_ADMIN": "x"})


async def test_start_up_refuses_a_grant_role_that_does_not_exist(warehouse: Warehouse):
    over = {"grants": [{"group": "data-science", "access": "read", "role": "dw_missing"}]}
    platform = platform_with(data_stores=[store_config(warehouse, **over)])
    drivers = make_drivers(platform, environ={"DW_ADMIN": warehouse.admin_secret})
    broker = DataBroker(platform, sa.create_engine("sqlite://"), drivers)
    with pytest.raises(DataStoresInvalid, match=r"data_stores\[0\].*dw_missing do not exist"):
        await broker.check_all()
    broker.close()


async def test_the_dashboard_shows_data_access_escaped(data_service, hub_state):
    svc, _ = await data_service()
    odd = user_with_server(hub_state, "eve<b>&", ("data-science",))
    hub_state.add_user("root", token="root-token", admin=True)
    code, _, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=odd)
    assert code == 201
    code, page, _ = await svc.call("GET", "/dashboard", token="root-token")
    assert code == 200
    section = page[page.index('id="data-access"') :]
    assert "eve&lt;b&gt;&amp;" in section and "eve<b>" not in section
    assert "warehouse" in section
