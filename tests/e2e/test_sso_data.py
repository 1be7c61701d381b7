"""Identity and data together, all real: a hub with single sign-on against a real OpenID
Connect provider (npm oidc-provider), the proxy, single-user servers, the platform service
and a PostgreSQL warehouse with a table per group. The groups claim decides which table a
kernel's ``mlfactory.data.connect("warehouse")`` reads; a change of groups at the provider
applies from the next SSO login and server start, and each server's role is dropped when
the server stops (the spawner's end-of-session notice, not the broker's tick)."""

from __future__ import annotations

import asyncio
import os
import re
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from tests.oidc import CLIENT_ID, CLIENT_SECRET, OIDCProvider, provider_problem
from tests.ports import free_port

from ..data.warehouse import prepare, stats_cluster, store_config
from ..pg import PostgresUnavailable
from ..service.pg_fixture import unavailable
from .conftest import api_token, discard_hub, example_config, prepare_hub, start_hub
from .helpers import HubClient
from .test_data_connect import run_in_kernel
from .test_sso_login import hub_user, sso_login

pytestmark = [pytest.mark.hub]

USER = "dana"
# A kernel reads both schemas: data-science's grant is schema a, ml-engineering's is b.
CODE = """
import mlfactory.data, sqlalchemy as sa
engine = mlfactory.data.connect("warehouse")
with engine.connect() as conn:
    print("me", conn.execute(sa.text("SELECT current_user")).scalar())
for table in ("a.orders", "b.salaries"):
    try:
        with engine.connect() as conn:
            n = len(conn.execute(sa.text(f"SELECT * FROM {table}")).all())
        print(table, "rows", n)
    except sa.exc.ProgrammingError as e:
        print(table, "refused", "permission denied" in str(e))
"""


@pytest.fixture(scope="module")
def sso_data() -> Iterator[tuple]:
    problem = provider_problem()
    if problem:
        pytest.fail(f"the OIDC provider cannot run: {problem}")
    try:
        cluster = stats_cluster()
    except PostgresUnavailable as e:
        unavailable(str(e))
    warehouse = prepare(cluster)
    provider = OIDCProvider(port=free_port())
    client_secret = Path(tempfile.mkstemp(prefix="mlf-oidc-secret-")[1])
    client_secret.write_text(CLIENT_SECRET)
    log = Path(tempfile.mkstemp(prefix="mlf-oidc-provider-", suffix=".log")[1])
    provider.start(log)
    config = example_config()
    config["auth"] = {
        "oidc": {
            "issuer": provider.issuer,
            "client_id": CLIENT_ID,
            "client_secret": {"file": str(client_secret)},
            "allowed_groups": ["data-science", "ml-engineering"],
        }
    }
    data, config_path = prepare_hub("sso-data", config)
    admin_secret = data / "warehouse-admin"  # read by the platform service only
    admin_secret.write_text(warehouse.admin_secret)
    os.chmod(admin_secret, 0o600)
    config["data_stores"] = [store_config(warehouse, admin_credentials={"file": str(admin_secret)})]
    config_path.write_text(yaml.safe_dump(config))
    hub = start_hub(data, config=config_path)
    # the client's redirect URI is the hub's, known only now (see test_sso_login)
    provider.redirect_uris = [f"{hub.url}/hub/oauth_callback"]
    provider.start(log)
    try:
        yield hub, provider, warehouse
    finally:
        provider.stop()
        discard_hub(hub, config_path)
        cluster.stop()
        client_secret.unlink(missing_ok=True)
        log.unlink(missing_ok=True)


def sign_in(browser, hub, provider, groups: list[str]) -> HubClient:
    """An SSO login of USER with ``groups`` at the provider; their REST client."""
    provider.set_account(USER, groups=groups)
    context = browser.new_context()
    try:
        page = context.new_page()
        response = sso_login(page, hub, USER)
        assert response.status == 302, page.content()
        return HubClient(hub, USER, token=api_token(page, hub, USER))
    finally:
        context.close()


def in_own_thread(coro) -> str:
    """Run ``coro`` to its end in a thread of its own: Playwright's sync API keeps an event
    loop running in this one."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(asyncio.run(coro)))
    thread.start()
    thread.join()
    assert out, "the kernel run failed (its error is in the captured log above)"
    return out[0]


def kernel_run(hub, client: HubClient) -> dict[str, str]:
    """Start USER's server, run CODE in a kernel there; what it printed, by table."""
    client.spawn(profile="cpu-small")
    client.wait_ready()
    output = in_own_thread(run_in_kernel(f"{hub.url}/user/{USER}", client.token, CODE))
    found = dict(re.findall(r"^(me|a\.orders|b\.salaries) (.+)$", output, re.M))
    assert set(found) == {"me", "a.orders", "b.salaries"}, output
    return found


def test_the_groups_claim_decides_the_table_and_a_change_applies_at_the_next_login(
    sso_data, browser
):
    hub, provider, warehouse = sso_data
    roles = f"mlf\\_{USER}\\_%"

    client = sign_in(browser, hub, provider, ["data-science"])
    assert hub_user(hub, client.token, USER)["groups"] == ["data-science"]
    first = kernel_run(hub, client)
    assert first["a.orders"] == "rows 5"
    assert first["b.salaries"] == "refused True"
    assert warehouse.roles(roles) == [first["me"]]

    # moved from data-science to ml-engineering at the provider: the hub learns it at the
    # next SSO login, and the platform service asks the hub for the groups at each issue
    client = sign_in(browser, hub, provider, ["ml-engineering"])
    assert hub_user(hub, client.token, USER)["groups"] == ["ml-engineering"]
    # the stop itself drops the role (the spawner's notice), with no upkeep tick to wait for:
    # the hub forgets the server only after its spawner has told the service
    client.stop()
    assert warehouse.roles(roles) == []

    second = kernel_run(hub, client)
    assert second["a.orders"] == "refused True"
    assert second["b.salaries"] == "rows 3"
    assert second["me"] != first["me"]
    assert warehouse.roles(roles) == [second["me"]]
    client.stop()
    assert warehouse.roles(roles) == []

    # the audit names both credentials, each under the grant that issued it
    usage = HubClient(hub).service_json(f"/data/usage?user={USER}")["usage"]
    (row,) = usage
    assert row["store"] == "warehouse" and row["credentials"] == 2 and row["live"] == 0
    assert row["groups"] == ["data-science", "ml-engineering"]
