"""Short-lived per-server PostgreSQL roles, end to end through the platform service's HTTP
API, against a real PostgreSQL (tests/pg.py, with pg_stat_statements and SCRAM logins) and
the stand-in hub: grants per group, managed identity (the server's own token), expiry,
renewal, the drop at stop, the audit, and the start-up checks."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
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
    now_clock.advance(10)
    _, second, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=fred)
    assert first["expires_at"] - first["issued_at"] == 600
    assert len(warehouse.roles("mlf\\_fred\\_%")) == 2
    # past half its life the tick extends VALID UNTIL (the password stays the same), of
    # the newest only: the client moved to it, the older one is left to expire
    now_clock.advance(400)
    await broker.tick()
    with warehouse.superuser() as conn:
        until = dict(
            conn.execute(
                "SELECT rolname, rolvaliduntil FROM pg_roles WHERE rolname LIKE 'mlf\\_fred\\_%'"
            ).fetchall()
        )
    assert until[second["principal"]].timestamp() == pytest.approx(now_clock() + 600)
    assert until[first["principal"]].timestamp() == pytest.approx(first["expires_at"])
    engine = engine_for(second)
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
    assert dict(events) == {"issue": 2, "renew": 1, "drop": 2}


async def test_the_audit_shows_queries_and_rows_read(data_service, hub_state, warehouse):
    svc, broker = await data_service()
    gina = user_with_server(hub_state, "gina", ("data-science",))
    hub_state.add_user("admin", token="admin-token", admin=True)
    hub_state.add_user("lead", token="lead-token", scopes=("custom:mlfactory:usage:read",))
    _, issued, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=gina)
    engine = engine_for(issued)
    for _ in range(3):
        assert count(engine, "a.orders") == 5
    # the API serves what the tick read from the store, and asks no store itself
    _, body, _ = await svc.call("GET", "/api/data/usage?user=gina", token="admin-token")
    assert body["usage"][0]["rows"] is None
    await broker.tick()
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


RW_SETUP = """
DROP FUNCTION IF EXISTS a.pwn();
DROP TABLE IF EXISTS a.kept;
DROP ROLE IF EXISTS evil;
DO $$ BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'dw_team_rw') THEN
    CREATE ROLE dw_team_rw NOLOGIN;
  END IF;
END $$;
GRANT USAGE, CREATE ON SCHEMA a TO dw_team_rw;
GRANT dw_team_rw TO mlf_admin;
"""
RW = {"grants": [{"group": "data-science", "access": "read-write", "role": "dw_team_rw"}]}


async def test_a_dropped_role_objects_never_pass_to_the_admin(data_service, hub_state, warehouse):
    # the reviewer's attack: a SECURITY DEFINER function that, once owned by the admin
    # (CREATEROLE), would create a login role holding the grant's privileges
    with warehouse.superuser() as conn:
        conn.execute(RW_SETUP)
    svc, broker = await data_service(**RW)
    mal = user_with_server(hub_state, "mal", ("data-science",))
    _, issued, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=mal)
    with engine_for(issued).begin() as conn:
        conn.execute(sa.text("CREATE TABLE a.kept (id int)"))
        conn.execute(
            sa.text(
                "CREATE FUNCTION a.pwn() RETURNS void LANGUAGE plpgsql SECURITY DEFINER AS $$ "
                "BEGIN EXECUTE 'CREATE ROLE evil LOGIN PASSWORD ''x'''; "
                "EXECUTE 'GRANT dw_team_b TO evil'; END $$"
            )
        )
    stop_server(hub_state, "mal")
    await broker.tick()
    assert warehouse.roles("mlf\\_mal\\_%") == []
    with warehouse.superuser() as conn:
        owners = dict(
            conn.execute(
                "SELECT 'pwn', pg_get_userbyid(proowner) FROM pg_proc WHERE proname = 'pwn' "
                "UNION ALL SELECT 'kept', tableowner FROM pg_tables WHERE tablename = 'kept'"
            ).fetchall()
        )
    # a read-write user's table outlives the role, owned by the grant's group role
    assert owners.get("kept") == "dw_team_rw" and owners.get("pwn") in (None, "dw_team_rw")
    # run by the next member of the grant: it runs as the group role, which cannot
    mal = user_with_server(hub_state, "mal", ("data-science",))
    _, again, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=mal)
    with engine_for(again).connect() as conn:
        with pytest.raises(sa.exc.DBAPIError):
            conn.execute(sa.text("SELECT a.pwn()"))
    with warehouse.superuser() as conn:
        evil = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = 'evil'").fetchone()
        conn.execute("DROP FUNCTION IF EXISTS a.pwn(); DROP TABLE IF EXISTS a.kept")
    assert evil is None


async def test_start_up_refuses_a_superuser_admin(warehouse: Warehouse):
    with warehouse.superuser() as conn:
        conn.execute("ALTER ROLE mlf_admin SUPERUSER")
    try:
        platform = platform_with(data_stores=[store_config(warehouse)])
        drivers = make_drivers(platform, environ={"DW_ADMIN": warehouse.admin_secret})
        broker = DataBroker(platform, sa.create_engine("sqlite://"), drivers)
        problem = r"data_stores\[0\]\.admin_credentials.*SUPERUSER"
        with pytest.raises(DataStoresInvalid, match=problem):
            await broker.check_all()
        broker.close()
    finally:
        with warehouse.superuser() as conn:
            conn.execute("ALTER ROLE mlf_admin NOSUPERUSER")


async def test_a_user_removed_from_the_group_loses_the_role_at_the_next_tick(
    data_service, hub_state, warehouse
):
    svc, broker = await data_service()
    ken = user_with_server(hub_state, "ken", ("data-science",))
    _, issued, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=ken)
    conn = engine_for(issued).connect()
    assert conn.execute(sa.text("SELECT count(*) FROM a.orders")).scalar() == 5
    await broker.tick()  # still granted: kept
    assert warehouse.roles("mlf\\_ken\\_%") == [issued["principal"]]
    hub_state.users["ken"]["groups"] = []
    hub_state.groups["data-science"].remove("ken")
    await broker.tick()
    assert warehouse.roles("mlf\\_ken\\_%") == []
    with pytest.raises(sa.exc.OperationalError):  # its open session was ended too
        conn.execute(sa.text("SELECT 1"))
    conn.invalidate()
    with broker.engine.connect() as db:
        reason = db.execute(
            sa.text("SELECT drop_reason FROM data_credentials WHERE principal = :p"),
            {"p": issued["principal"]},
        ).scalar()
    assert reason == "grant changed"


async def test_one_broken_credential_or_store_stops_no_upkeep(
    data_service, hub_state, now_clock, warehouse, monkeypatch, caplog
):
    svc, broker = await data_service(ttl="10m")
    gone = user_with_server(hub_state, "lou", ("data-science",))
    fine = user_with_server(hub_state, "max", ("data-science",))
    _, lost, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=gone)
    _, kept, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=fine)
    with warehouse.superuser() as conn:  # an admin drops one role by hand
        conn.execute(f'DROP ROLE "{lost["principal"]}"')
    driver = broker.drivers["warehouse"]

    def statements_not_loaded(refs):
        # what pg_stat_statements raises when created but not in shared_preload_libraries
        raise psycopg.errors.ObjectNotInPrerequisiteState(
            "pg_stat_statements must be loaded via shared_preload_libraries"
        )

    monkeypatch.setattr(driver, "usage", statements_not_loaded)
    now_clock.advance(400)
    await broker.tick()  # renewing the missing role fails; the other is still renewed
    with warehouse.superuser() as conn:
        (until,) = conn.execute(
            "SELECT rolvaliduntil FROM pg_roles WHERE rolname = %s", [kept["principal"]]
        ).fetchone()
    assert until.timestamp() == pytest.approx(now_clock() + 600)
    assert "renewing " + lost["principal"] in caplog.text and "pg_stat_statements" in caplog.text
    # expired: dropped (revoke is idempotent on a missing role), recorded once
    now_clock.advance(400)
    await broker.tick()
    await broker.tick()
    with broker.engine.connect() as db:
        rows = db.execute(
            sa.text(
                "SELECT c.drop_reason, count(e.id) FROM data_credentials c "
                "JOIN data_credential_events e ON e.principal = c.principal AND e.event = 'drop' "
                "WHERE c.principal = :p GROUP BY c.drop_reason"
            ),
            {"p": lost["principal"]},
        ).all()
    assert rows == [("expired", 1)]
    assert warehouse.roles("mlf\\_max\\_%") == [kept["principal"]]


async def test_credentials_issued_while_the_tick_reads_the_hub_are_kept(
    data_service, hub_state, warehouse, monkeypatch
):
    svc, broker = await data_service()
    read_hub = broker.hub_view
    issued = {}

    async def a_server_starts_meanwhile():
        out = await read_hub()  # the hub answered before nina's server started
        nina = user_with_server(hub_state, "nina", ("data-science",))
        _, issued["nina"], _ = await svc.call("POST", "/api/data/warehouse/credentials", token=nina)
        return out

    monkeypatch.setattr(broker, "hub_view", a_server_starts_meanwhile)
    await broker.tick()
    assert warehouse.roles("mlf\\_nina\\_%") == [issued["nina"]["principal"]]


async def test_issuing_in_a_loop_keeps_at_most_three_roles(
    data_service, hub_state, now_clock, warehouse
):
    svc, broker = await data_service()
    olga = user_with_server(hub_state, "olga", ("data-science",))
    issued = []
    for _ in range(5):
        now_clock.advance(1)
        _, body, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=olga)
        issued.append(body["principal"])
    assert warehouse.roles("mlf\\_olga\\_%") == sorted(issued[-3:])
    with broker.engine.connect() as db:
        reasons = db.execute(
            sa.text("SELECT drop_reason FROM data_credentials WHERE \"user\" = 'olga'")
        ).scalars()
        assert sorted(r or "" for r in reasons) == ["", "", "", "replaced", "replaced"]


async def test_a_role_whose_record_fails_is_dropped_at_once(
    data_service, hub_state, warehouse, monkeypatch
):
    svc, broker = await data_service()
    pat = user_with_server(hub_state, "pat", ("data-science",))

    def database_full(*args):
        raise sa.exc.OperationalError("INSERT", {}, Exception("disk full"))

    monkeypatch.setattr(broker, "_record_issue", database_full)
    code, body, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=pat)
    assert code >= 500 and "Traceback" not in str(body)
    assert warehouse.roles("mlf\\_pat\\_%") == []


async def test_the_first_tick_drops_roles_no_row_knows(data_service, hub_state, warehouse):
    from mlfactory.service.data_grants import entitlement

    svc, broker = await data_service()
    quin = user_with_server(hub_state, "quin", ("data-science",))
    _, recorded, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=quin)
    # a crash between CREATE ROLE and the row: a role the table does not know
    grant = entitlement(broker.stores["warehouse"], ["data-science"])
    stray = broker.drivers["warehouse"].issue("quin", "", grant, broker.clock(), 600)
    with warehouse.superuser() as conn:  # not the platform's: left alone
        conn.execute("DROP ROLE IF EXISTS mlf_by_hand; CREATE ROLE mlf_by_hand LOGIN")
    await broker.tick()
    assert warehouse.roles("mlf\\_quin\\_%") == [recorded["principal"]]
    assert stray.principal not in warehouse.roles()
    assert "mlf_by_hand" in warehouse.roles()


async def test_start_up_needs_the_admin_in_each_read_write_group_role(warehouse: Warehouse):
    with warehouse.superuser() as conn:
        conn.execute("DROP ROLE IF EXISTS dw_team_c; CREATE ROLE dw_team_c NOLOGIN")
    over = {"grants": [{"group": "data-science", "access": "read-write", "role": "dw_team_c"}]}
    platform = platform_with(data_stores=[store_config(warehouse, **over)])
    drivers = make_drivers(platform, environ={"DW_ADMIN": warehouse.admin_secret})
    broker = DataBroker(platform, sa.create_engine("sqlite://"), drivers)
    with pytest.raises(DataStoresInvalid, match=r"member of .*dw_team_c \(GRANT dw_team_c TO"):
        await broker.check_all()
    with warehouse.superuser() as conn:
        conn.execute("GRANT dw_team_c TO mlf_admin")
    await broker.check_all()
    broker.close()


async def test_a_grant_moved_to_another_role_is_dropped_and_the_next_connect_gets_it(
    data_service, hub_state, warehouse
):
    svc, broker = await data_service()
    rita = user_with_server(hub_state, "rita", ("data-science",))
    _, issued, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=rita)
    assert issued["credentials"]["roles"] == ["dw_team_a"]
    conn = engine_for(issued).connect()
    assert conn.execute(sa.text("SELECT count(*) FROM a.orders")).scalar() == 5
    await broker.tick()  # the same config: kept
    assert warehouse.roles("mlf\\_rita\\_%") == [issued["principal"]]
    # the admin points data-science's grant at dw_team_b (rita's groups stay the same) and
    # the service restarts with the new mlfactory.yaml, over the same database
    moved = {"grants": [{"group": "data-science", "access": "read", "role": "dw_team_b"}]}
    svc, broker = await data_service(**moved)
    await broker.tick()
    # the login role was still a member of dw_team_a: it is gone, its session ended
    assert warehouse.roles("mlf\\_rita\\_%") == []
    with pytest.raises(sa.exc.OperationalError):
        conn.execute(sa.text("SELECT 1"))
    conn.invalidate()
    with broker.engine.connect() as db:
        reason = db.execute(
            sa.text("SELECT drop_reason FROM data_credentials WHERE principal = :p"),
            {"p": issued["principal"]},
        ).scalar()
    assert reason == "role changed"
    # the next connect gets dw_team_b's tables only
    code, again, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=rita)
    assert code == 201 and again["credentials"]["roles"] == ["dw_team_b"]
    b = engine_for(again)
    assert count(b, "b.salaries") == 3
    with pytest.raises(sa.exc.ProgrammingError, match="permission denied"):
        count(b, "a.orders")
    await broker.tick()  # recorded with dw_team_b: kept
    assert warehouse.roles("mlf\\_rita\\_%") == [again["principal"]]
