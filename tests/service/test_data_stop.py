"""The drop at stop: the spawner's end-of-session notice (``/api/sessions/<key>/end``, the
same call that stops the server's cost) drops that server's PostgreSQL roles at once, with
no broker tick; other servers' roles, and a later session's, stay. Real PostgreSQL."""

from __future__ import annotations

import sqlalchemy as sa

from ..data import fixtures
from ..data.fixtures import user_with_server
from .helpers import SECRET

warehouse = fixtures.warehouse
data_service = fixtures.data_service
stores_service = fixtures.stores_service
now_clock = fixtures.now_clock


def ledger(key: str, user: str) -> dict:
    """The gate request the spawner sends before a start (opens the ledger session)."""
    return {
        "key": key,
        "user": user,
        "server_name": "",
        "project": "personal",
        "profile": "cpu-small",
        "price_per_hour": 0.0,
        "resources": {"cpu": 1},
        "groups": ["data-science"],
    }


async def open_session(svc, key: str, user: str) -> None:
    code, body, _ = await svc.call("POST", "/api/gate", secret=SECRET, body=ledger(key, user))
    assert code == 200 and body["allowed"], body


async def test_the_session_end_drops_the_servers_roles_without_a_tick(
    data_service, hub_state, warehouse
):
    svc, broker = await data_service()
    ticks = 0
    tick = broker.tick

    async def counted_tick() -> None:
        nonlocal ticks
        ticks += 1
        await tick()

    broker.tick = counted_tick  # any tick would hide whether the notice itself dropped
    await open_session(svc, "gina-session-0001", "gina")
    await open_session(svc, "hugo-session-0001", "hugo")
    gina = user_with_server(hub_state, "gina", ("data-science",))
    hugo = user_with_server(hub_state, "hugo", ("data-science",))
    code, issued, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=gina)
    assert code == 201, issued
    code, other, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=hugo)
    assert code == 201, other
    engine = sa.create_engine(issued["credentials"]["url"], poolclass=sa.pool.NullPool)
    conn = engine.connect()  # a query session open at the stop
    assert conn.execute(sa.text("SELECT count(*) FROM a.orders")).scalar() == 5
    assert len(warehouse.roles("mlf\\_gina\\_%")) == 1

    # the hub still lists the server while its spawner stops it: only the notice can tell
    code, body, _ = await svc.call(
        "POST", "/api/sessions/gina-session-0001/end", secret=SECRET, body={"reason": "stopped"}
    )
    assert code == 200, body
    assert warehouse.roles("mlf\\_gina\\_%") == []
    assert len(warehouse.roles("mlf\\_hugo\\_%")) == 1  # another user's server: untouched
    assert ticks == 0
    try:
        conn.execute(sa.text("SELECT 1"))
        raise AssertionError("the open session outlived its role")
    except sa.exc.OperationalError:
        conn.invalidate()
    with broker.engine.connect() as db:
        reasons = db.execute(
            sa.text("SELECT drop_reason FROM data_credentials WHERE \"user\" = 'gina'")
        ).scalars()
        assert list(reasons) == ["server stopped"]
    # what the role did before the stop is in the audit: no later tick reads it
    (usage,) = await broker.usage(user="gina")
    assert usage["live"] == 0 and usage["queries"] >= 1 and usage["rows"] >= 1


async def test_an_unknown_or_repeated_notice_drops_nothing_else(data_service, hub_state, warehouse):
    svc, _ = await data_service()
    await open_session(svc, "ivan-session-0001", "ivan")
    ivan = user_with_server(hub_state, "ivan", ("data-science",))
    code, _, _ = await svc.call("POST", "/api/data/warehouse/credentials", token=ivan)
    assert code == 201
    code, body, _ = await svc.call(
        "POST", "/api/sessions/nobody-session-01/end", secret=SECRET, body={}
    )
    assert code == 404, body
    assert len(warehouse.roles("mlf\\_ivan\\_%")) == 1
    # the notice is authenticated by the service secret, as before
    code, _, _ = await svc.call("POST", "/api/sessions/ivan-session-0001/end", body={})
    assert code in (401, 403)
    assert len(warehouse.roles("mlf\\_ivan\\_%")) == 1
