"""A hub restart (an upgrade, a config change) keeps users' servers running: the shipped
config sets ``cleanup_servers = False``, and the restarted hub finds each server again and
routes to it."""

from __future__ import annotations

import time

import pytest
import requests

from .conftest import (
    RealHub,
    discard_hub,
    free_port,
    prepare_hub,
    rest_token,
    start_hub,
    stop_hub,
)

pytestmark = [pytest.mark.hub]


def wait_for(predicate, what: str, timeout: float = 120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.25)  # polling a real hub
    raise AssertionError(f"timed out waiting for {what}")


def default_server(hub: RealHub, headers: dict) -> dict:
    r = requests.get(f"{hub.url}/hub/api/users/admin", headers=headers, timeout=60)
    assert r.status_code == 200, r.text
    return r.json()["servers"].get("", {})


def server_status(hub: RealHub, headers: dict) -> int:
    """The status of the admin's JupyterLab API, reached through the hub's proxy."""
    return requests.get(f"{hub.url}/user/admin/api/status", headers=headers, timeout=60).status_code


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped
    except (OSError, IndexError):
        return False


def test_a_hub_restart_keeps_the_servers_running():
    data, config_path = prepare_hub("restart")
    # The shipped config, nothing overridden but the hub's internal address: fixed, as in
    # a deployment, since the servers that survive keep calling it (start_hub would pick
    # a new port each time).
    hub_api = f"--JupyterHub.hub_bind_url=http://127.0.0.1:{free_port()}"
    hub = start_hub(data, hub_api, config=config_path)
    try:
        headers = {"Authorization": f"token {rest_token(hub)}"}
        r = requests.post(f"{hub.url}/hub/api/users/admin/server", headers=headers, timeout=120)
        assert r.status_code in (201, 202), r.text
        server = wait_for(lambda: default_server(hub, headers).get("ready"), "the server")
        server = default_server(hub, headers)
        pid = server["state"]["pid"]
        assert server_status(hub, headers) == 200

        stop_hub(hub)
        assert running(pid), "stopping the hub stopped the user's server"

        hub = start_hub(data, hub_api, config=config_path)
        # the same server, found again from its saved state, and routed to by the new proxy
        server = wait_for(lambda: default_server(hub, headers).get("ready") and
                          default_server(hub, headers), "the server after the restart")  # fmt: skip
        assert server["state"]["pid"] == pid and running(pid)
        assert wait_for(lambda: server_status(hub, headers) == 200, "the server's API")
    finally:
        discard_hub(hub, config_path)
