"""A server's managed identity through a real hub, proxy, platform service and single-user
server, with a real PostgreSQL: the identity rotates while the server runs (the period is
shortened through ``data.identity``), the replaced one is refused, one kernel's
``mlfactory.data.connect`` keeps working without a restart, the server's own long-lived token
unlocks no data, and every identity is revoked at the stop."""

from __future__ import annotations

import asyncio
import json
import os
import uuid

import pytest
import requests
import yaml
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from ..data.warehouse import prepare, stats_cluster, store_config
from ..pg import PostgresUnavailable
from ..service.pg_fixture import unavailable
from .conftest import discard_hub, example_config, prepare_hub, start_hub
from .helpers import SERVICE_API, HubClient, poll

pytestmark = [pytest.mark.hub]

ROTATE_S = 3  # replaced every 3 s here; a replaced one is revoked 1 s later
NOTE = "mlfactory identity of admin/"

OPEN = """
import json, os, urllib.request, urllib.error, mlfactory.data, sqlalchemy as sa
path = os.environ["MLFACTORY_IDENTITY_FILE"]
print("mode", oct(os.stat(path).st_mode & 0o777))
creds = mlfactory.data.ServiceCredentials("warehouse")
engine = mlfactory.data.connect("warehouse")
with engine.connect() as conn:
    print("ids", [r[0] for r in conn.execute(sa.text("SELECT id FROM a.orders ORDER BY id"))])
print("identity", json.dumps(json.load(open(path))))
"""
WHICH = 'print("identity", json.dumps(json.load(open(path))))'
AGAIN = """
print("fetched", creds._fetch()["credentials"]["user"])
engine2 = mlfactory.data.connect("warehouse")
with engine2.connect() as conn:
    print("again", conn.execute(sa.text("SELECT count(*) FROM a.orders")).scalar())

def ask(path_, token):
    req = urllib.request.Request(creds.url.replace("/data/warehouse/credentials", path_),
                                 data=b"{}", method="POST",
                                 headers={"Authorization": f"token {token}"})
    try:
        return urllib.request.urlopen(req, timeout=20).status
    except urllib.error.HTTPError as e:
        return e.code

print("server token", ask("/data/warehouse/credentials", os.environ["JUPYTERHUB_API_TOKEN"]))
print("identity mints", ask("/identity", creds.bearer()))
"""


class Kernel:
    """One kernel of a running server, kept across cells (the point: no restart)."""

    def __init__(self, base: str, token: str) -> None:
        self.base, self.headers = base, {"Authorization": f"token {token}"}

    async def open(self) -> None:
        from tornado.httpclient import AsyncHTTPClient

        resp = await AsyncHTTPClient().fetch(
            f"{self.base}/api/kernels", method="POST", body="{}", headers=self.headers
        )
        kernel = json.loads(resp.body)["id"]
        url = self.base.replace("http", "ws", 1) + f"/api/kernels/{kernel}/channels"
        self.ws = await websocket_connect(HTTPRequest(url, headers=self.headers))

    async def run(self, code: str, limit_s: float = 120) -> str:
        msg_id = uuid.uuid4().hex
        msg = {
            "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "admin",
                       "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
            "parent_header": {}, "metadata": {}, "channel": "shell",
            "content": {"code": code, "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
        }  # fmt: skip
        await self.ws.write_message(json.dumps(msg))
        out: list[str] = []

        async def collect() -> None:
            while True:
                reply = json.loads(await self.ws.read_message())
                if reply.get("parent_header", {}).get("msg_id") != msg_id:
                    continue
                kind, content = reply.get("msg_type"), reply.get("content", {})
                if kind == "stream":
                    out.append(content["text"])
                elif kind == "error":
                    out.append("\n".join(content.get("traceback", [])))
                elif kind == "status" and content["execution_state"] == "idle":
                    return

        await asyncio.wait_for(collect(), limit_s)
        return "".join(out)


def printed(output: str, label: str) -> str:
    for line in output.splitlines():
        if line.startswith(label + " "):
            return line[len(label) + 1 :]
    raise AssertionError(f"{label!r} not printed:\n{output}")


@pytest.fixture(scope="module")
def identity_hub():
    try:
        cluster = stats_cluster()
    except PostgresUnavailable as e:
        unavailable(str(e))
    warehouse = prepare(cluster)
    config = example_config()
    config["accounting"]["interval"] = "2s"
    for g in config["groups"]:
        if g["name"] == "data-science":
            g["members"] = ["admin"]
    data, config_path = prepare_hub("identity", config)
    secret = data / "warehouse-admin"
    secret.write_text(warehouse.admin_secret)
    os.chmod(secret, 0o600)
    config["data_stores"] = [store_config(warehouse, admin_credentials={"file": str(secret)})]
    # lifetime far beyond the test: a replaced identity is refused because it was revoked
    config["data"] = {"identity": {"rotate": ROTATE_S, "lifetime": 600, "overlap": 1}}
    config_path.write_text(yaml.safe_dump(config))
    hub = start_hub(data, config=config_path)
    try:
        yield hub, warehouse
    finally:
        discard_hub(hub, config_path)
        cluster.stop()


def credentials_status(hub, token: str) -> requests.Response:
    return requests.post(
        f"{hub.url}{SERVICE_API}/data/warehouse/credentials",
        headers={"Authorization": f"token {token}"},
        timeout=60,
    )


def identities(admin: HubClient) -> list[dict]:
    tokens = admin.hub_json("/users/admin/tokens")["api_tokens"]
    return [t for t in tokens if t.get("note") == NOTE]


def test_the_identity_rotates_the_old_one_is_refused_and_a_kernel_keeps_working(identity_hub):
    hub, warehouse = identity_hub
    admin = HubClient(hub)
    admin.spawn()
    admin.wait_ready()
    kernel = Kernel(f"{hub.url}/user/admin", admin.token)

    async def scenario() -> dict:
        await kernel.open()
        out = await kernel.run(OPEN)
        assert "ids [1, 2, 3, 4, 5]" in out, out
        assert printed(out, "mode") == "0o600"
        first = json.loads(printed(out, "identity"))

        # the hub keeps it as a short-lived token of the user, scoped to this server only
        (listed,) = [t for t in identities(admin) if t["id"] == first["token_id"]] or [None]
        assert listed is not None, identities(admin)
        assert listed["expires_at"] is not None
        scopes = set(listed["scopes"])
        assert {"read:servers!server=admin/", "access:services!service=mlfactory"} <= scopes
        # beyond those, only what the hub adds so a token can identify its owner: it cannot
        # open the server, start or stop it, or make tokens
        extra = scopes - {"read:servers!server=admin/", "access:services!service=mlfactory"}
        assert all(s.startswith("read:users:") and s.endswith("!user=admin") for s in extra)

        # it is replaced while the server runs...
        async def current() -> dict:
            return json.loads(printed(await kernel.run(WHICH), "identity"))

        deadline = asyncio.get_running_loop().time() + 60
        now = first
        while now["token_id"] == first["token_id"]:
            assert asyncio.get_running_loop().time() < deadline, "the identity never rotated"
            await asyncio.sleep(1)  # a real server's timer, not a clock under test
            now = await current()

        # ...and the replaced one is revoked after the overlap, so the service refuses it
        seen: list[requests.Response] = []

        def refused() -> bool:
            seen.append(credentials_status(hub, first["token"]))
            return seen[-1].status_code == 401

        def last_answer() -> str:
            return f"the replaced identity refused (last: {seen[-1].status_code} {seen[-1].text})"

        await asyncio.to_thread(poll, refused, 60, last_answer)
        r = seen[-1]
        assert "restart" in r.json()["error"] and "expired or revoked" in r.json()["error"]

        # the same kernel, no restart: its credentials object and a new engine both work
        out = await kernel.run(AGAIN)
        assert printed(out, "fetched").startswith("mlf_admin_"), out
        assert printed(out, "again") == "5", out
        # the server's own long-lived token unlocks no data, and an identity mints nothing
        assert printed(out, "server token") == "403", out
        assert printed(out, "identity mints") == "403", out
        kernel.ws.close()
        return now

    latest = asyncio.run(scenario())
    assert identities(admin), "the running server holds an identity"
    admin.stop()
    # every identity of the server is revoked at the stop
    poll(lambda: identities(admin) == [], 60, "no identity of the stopped server left")
    # (the service keeps the hub's word on a token 2 s: until then "not running", 403)
    poll(
        lambda: credentials_status(hub, latest["token"]).status_code == 401,
        60,
        "the last identity refused as revoked",
    )
    poll(lambda: warehouse.roles("mlf\\_admin\\_%") == [], 60, "the role dropped at the stop")
