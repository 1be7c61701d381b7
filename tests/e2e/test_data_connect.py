"""Managed data credentials through a real hub, proxy and single-user server (no browser):
a kernel calls ``mlfactory.data.connect("warehouse")`` with nothing but what the platform
put in its environment, reads its group's table and is refused the other's; the service
drops the role once the server stops. The warehouse is a real PostgreSQL (tests/pg.py)."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
import yaml
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from ..data.warehouse import prepare, stats_cluster, store_config
from ..pg import PostgresUnavailable
from ..service.pg_fixture import unavailable
from .conftest import discard_hub, example_config, prepare_hub, start_hub
from .helpers import SERVICE_API, HubClient, poll

pytestmark = [pytest.mark.hub]

CODE = """
import mlfactory.data, sqlalchemy as sa
engine = mlfactory.data.connect("warehouse")
with engine.connect() as conn:
    print("ids", [r[0] for r in conn.execute(sa.text("SELECT id FROM a.orders ORDER BY id"))])
    print("me", conn.execute(sa.text("SELECT current_user")).scalar())
try:
    with engine.connect() as conn:
        conn.execute(sa.text("SELECT * FROM b.salaries")).all()
    print("b: read")
except sa.exc.ProgrammingError as e:
    print("b: refused", "permission denied" in str(e))
"""


@pytest.fixture(scope="module")
def data_hub():
    try:
        cluster = stats_cluster()
    except PostgresUnavailable as e:
        unavailable(str(e))
    warehouse = prepare(cluster)
    config = example_config()
    config["accounting"]["interval"] = "2s"  # the upkeep tick follows it
    for g in config["groups"]:
        if g["name"] == "data-science":
            g["members"] = ["admin"]
    data, config_path = prepare_hub("data", config)
    # the admin secret sits in a file only the service's account reads
    secret = data / "warehouse-admin"
    secret.write_text(warehouse.admin_secret)
    os.chmod(secret, 0o600)
    config["data_stores"] = [store_config(warehouse, admin_credentials={"file": str(secret)})]
    config_path.write_text(yaml.safe_dump(config))
    hub = start_hub(data, config=config_path)
    try:
        yield hub, warehouse
    finally:
        discard_hub(hub, config_path)
        cluster.stop()


async def run_in_kernel(base: str, token: str, code: str, limit_s: float = 120) -> str:
    """Start a kernel in the server at ``base``, run ``code``, return its stdout."""
    headers = {"Authorization": f"token {token}"}
    resp = await AsyncHTTPClient().fetch(
        f"{base}/api/kernels", method="POST", body="{}", headers=headers
    )
    kernel = json.loads(resp.body)["id"]
    ws_url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel}/channels"
    ws = await websocket_connect(HTTPRequest(ws_url, headers=headers))
    msg_id = uuid.uuid4().hex
    msg = {
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "admin",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": code, "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }  # fmt: skip
    await ws.write_message(json.dumps(msg))
    out: list[str] = []

    async def collect() -> None:
        while True:
            reply = json.loads(await ws.read_message())
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = reply.get("msg_type"), reply.get("content", {})
            if kind == "stream":
                out.append(content["text"])
            elif kind == "error":
                out.append("\n".join(content.get("traceback", [])))
            elif kind == "status" and content["execution_state"] == "idle":
                return

    try:
        await asyncio.wait_for(collect(), limit_s)
    finally:
        ws.close()
    return "".join(out)


def test_a_kernel_connects_with_the_servers_identity_and_reads_its_table(data_hub):
    hub, warehouse = data_hub
    admin = HubClient(hub)
    admin.spawn()
    admin.wait_ready()
    output = asyncio.run(run_in_kernel(f"{hub.url}/user/admin", admin.token, CODE))
    assert "ids [1, 2, 3, 4, 5]" in output, output
    assert "b: refused True" in output, output
    assert "me mlf_admin_" in output, output
    assert len(warehouse.roles("mlf\\_admin\\_%")) == 1
    # the Data panel's route: the owner's connections through the server extension
    r = admin.get("/user/admin/mlfactory/api/data/connections")
    assert r.status_code == 200, r.text
    (conn,) = r.json()["connections"]
    assert conn["name"] == "warehouse" and "mlfactory.data.connect('warehouse')" in conn["snippet"]
    # the audit names the user and store
    usage = admin.service_json("/data/usage?user=admin")["usage"]
    assert usage[0]["store"] == "warehouse" and usage[0]["credentials"] >= 1
    # a personal token is not a server's identity
    r = admin.post(f"{SERVICE_API}/data/warehouse/credentials")
    assert r.status_code == 403
    admin.stop()
    poll(lambda: warehouse.roles("mlf\\_admin\\_%") == [], 60, "the role dropped at the stop")
