"""S3 data credentials against moto's standalone server, a STAND-IN for a real
S3-compatible store (Ceph's radosgw would be the real one; see the module's note in
docs): STS AssumeRole with the grant's session policy, the credentials' expiry, and
``mlfactory.data.connect`` reading the granted prefix through the platform service.

moto answers STS and S3 like AWS but does not enforce session policies, so what the
policy allows is tested on the pure builder (test_data_grants.py), not here."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import boto3
import pytest
import sqlalchemy as sa
from mlfactory.data import connect
from mlfactory.service.data_broker import DataStoresInvalid
from mlfactory.service.data_db import DataCredential

from ..data import fixtures
from ..data.fixtures import user_with_server
from ..ports import free_port

now_clock = fixtures.now_clock
stores_service = fixtures.stores_service
ADMIN_KEYS = "AKIAADMINEXAMPLE:admin-secret-example"


@pytest.fixture(scope="module")
def moto_stand_in() -> Iterator[str]:
    """moto_server on a free loopback port (a stand-in for radosgw)."""
    exe = Path(sys.executable).with_name("moto_server")
    # moto[server] is in the test extra: its absence is a broken setup, not a reason to skip
    assert exe.exists(), "moto_server is missing: make setup installs moto[server]"
    port = free_port()
    proc = subprocess.Popen(
        [str(exe), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env={**os.environ, "MOTO_ALLOW_NONEXISTENT_REGION": "true"},
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            urllib.request.urlopen(f"{url}/moto-api/", timeout=2)  # noqa: S310
            break
        except OSError:
            if time.monotonic() > deadline or proc.poll() is not None:
                proc.kill()
                pytest.fail("moto_server did not start within 60 s")
            time.sleep(0.2)
    yield url
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def lake(moto_stand_in) -> dict:
    """Bucket ``lake`` (ops/ and finance/ prefixes) and the role sessions assume."""
    key, secret = ADMIN_KEYS.split(":")
    kw = dict(
        endpoint_url=moto_stand_in,
        region_name="us-east-1",
        aws_access_key_id=key,
        aws_secret_access_key=secret,
    )
    s3 = boto3.client("s3", **kw)
    s3.create_bucket(Bucket="lake")
    s3.put_object(Bucket="lake", Key="ops/runs.csv", Body=b"run,ok\n1,yes\n")
    s3.put_object(Bucket="lake", Key="finance/pay.csv", Body=b"who,pay\n")
    trust = {
        "Version": "2012-10-17",
        "Statement": [{"Effect": "Allow", "Principal": {"AWS": "*"}, "Action": "sts:AssumeRole"}],
    }
    role = boto3.client("iam", **kw).create_role(
        RoleName="mlfactory-data", AssumeRolePolicyDocument=json.dumps(trust)
    )
    return {
        "name": "lake",
        "kind": "s3",
        "url": moto_stand_in,
        "role_arn": role["Role"]["Arn"],
        "ttl": "15m",
        "admin_credentials": {"env": "LAKE_ADMIN"},
        "grants": [{"group": "data-science", "access": "read", "prefixes": ["lake/ops/"]}],
    }


async def test_s3_credentials_are_issued_scoped_and_expiring_moto_stand_in(
    stores_service, hub_state, lake
):
    svc, broker = await stores_service([lake], {"LAKE_ADMIN": ADMIN_KEYS})
    token = user_with_server(hub_state, "alice", ("data-science",))
    code, issued, _ = await svc.call("POST", "/api/data/lake/credentials", token=token)
    assert code == 201, issued
    creds = issued["credentials"]
    assert creds["session_token"] and creds["access_key_id"] != ADMIN_KEYS.split(":")[0]
    assert creds["prefixes"] == ["lake/ops/"]
    assert 0 < issued["expires_at"] - time.time() <= 15 * 60 + 5
    stores = json.dumps([{"name": "lake", "kind": "s3", "url": lake["url"], "managed": True}])

    def work():
        s3 = connect("lake", environ={"MLFACTORY_DATA_STORES": stores}, service_url=svc.url,
                     token=token)  # fmt: skip
        return s3.get_object(Bucket="lake", Key="ops/runs.csv")["Body"].read()

    assert await asyncio.to_thread(work) == b"run,ok\n1,yes\n"
    carol = user_with_server(hub_state, "carol", ("marketing",))
    code, body, _ = await svc.call("POST", "/api/data/lake/credentials", token=carol)
    assert code == 403 and "'lake'" in body["error"]


async def test_s3_start_up_checks_moto_stand_in(stores_service, lake):
    with pytest.raises(DataStoresInvalid, match=r"data_stores\[0\]\.admin_credentials: lake"):
        await stores_service([{**lake, "role_arn": ""}], {"LAKE_ADMIN": ADMIN_KEYS})


async def test_s3_a_grant_moved_to_other_prefixes_is_dropped_moto_stand_in(
    stores_service, hub_state, lake
):
    svc, broker = await stores_service([lake], {"LAKE_ADMIN": ADMIN_KEYS})
    token = user_with_server(hub_state, "dina", ("data-science",))
    _, issued, _ = await svc.call("POST", "/api/data/lake/credentials", token=token)
    await broker.tick()  # the same config: kept
    assert [c.principal for c in broker.live()] == [issued["principal"]]
    # the admin moves data-science's grant to lake/finance/; the service restarts with it
    moved = {**lake, "grants": [{"group": "data-science", "prefixes": ["lake/finance/"]}]}
    svc, broker = await stores_service([moved], {"LAKE_ADMIN": ADMIN_KEYS})
    await broker.tick()
    assert broker.live() == []  # STS cannot end it early: no renewal, gone at its expiry
    with broker.engine.connect() as db:
        (reason,) = db.execute(
            sa.select(DataCredential.drop_reason).where(
                DataCredential.principal == issued["principal"]
            )
        ).one()
    assert reason == "prefixes changed"
    _, again, _ = await svc.call("POST", "/api/data/lake/credentials", token=token)
    assert again["credentials"]["prefixes"] == ["lake/finance/"]
