"""A hub restart (an upgrade, a config change) keeps users' servers running: the shipped
config sets ``cleanup_servers = False``, and the restarted hub finds each server again and
routes to it."""

from __future__ import annotations

import pytest

from tests.ports import free_port

from .conftest import discard_hub, prepare_hub, start_hub, stop_hub
from .helpers import HubClient, poll

pytestmark = [pytest.mark.hub]


def running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"  # a zombie has stopped
    except (OSError, IndexError):
        return False


def server_status(admin: HubClient) -> int:
    """The status of the admin's JupyterLab API, reached through the hub's proxy."""
    return admin.get("/user/admin/api/status").status_code


def test_a_hub_restart_keeps_the_servers_running():
    data, config_path = prepare_hub("restart")
    # The shipped config, nothing overridden but the hub's internal address: fixed, as in
    # a deployment, since the servers that survive keep calling it (start_hub would pick
    # a new port each time).
    hub_api = f"--JupyterHub.hub_bind_url=http://127.0.0.1:{free_port()}"
    hub = start_hub(data, hub_api, config=config_path)
    try:
        admin = HubClient(hub)
        r = admin.start()
        assert r.status_code in (201, 202), r.text
        server = admin.wait_ready("", 120)
        pid = server["state"]["pid"]
        assert server_status(admin) == 200

        stop_hub(hub)
        assert running(pid), "stopping the hub stopped the user's server"

        hub = admin.hub = start_hub(data, hub_api, config=config_path)
        # the same server, found again from its saved state, and routed to by the new proxy
        server = admin.wait_ready("", 120)
        assert server["state"]["pid"] == pid and running(pid)
        assert poll(lambda: server_status(admin) == 200, 120, "the server's API")
    finally:
        discard_hub(hub, config_path)
