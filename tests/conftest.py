"""Shared test setup.

Loads the jupyter-server fixtures (jp_fetch & co) for the server-extension tests and the
shared fixture plugins below (the stand-in hub, the platform service, PostgreSQL),
puts this environment's bin folder first on PATH (where the run command installs
configurable-http-proxy), and gives MockHub tests a configuration that keeps each
hub apart from any other hub on the machine.
"""

from __future__ import annotations

import os
import socket
import sys
from pathlib import Path

import pytest

pytest_plugins = [
    "pytest_jupyter.jupyter_server",
    # shared fixtures, reaching every test directory (none imports another's conftest)
    "tests.fakehub",  # hub_state, fake_hub: the one stand-in for the hub's REST API
    "tests.service.fixtures",  # the platform service: store, clock, service, ...
    "tests.service.pg_fixture",  # postgresql_cluster, postgresql_url: one per session
    "tests.engine_fixture",  # container_engine, minimal_image: Podman and a registry
]

BIN = Path(sys.executable).parent
# A platform config with backend "auto" runs local processes in tests, whatever engine this
# machine runs; the container tests say "container" in their config.
os.environ.setdefault("MLFACTORY_BACKEND", "local")
os.environ["PATH"] = os.pathsep.join([str(BIN), os.environ["PATH"]])


def distinct_free_ports(count: int) -> list[int]:
    """Ports free right now, all different (picking one at a time can repeat a port)."""
    socks = [socket.socket() for _ in range(count)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@pytest.fixture
def mockhub_config(tmp_path) -> dict:
    """Base config for pytest-jupyterhub's ``hub_app``: the real proxy, own ports and files.

    MockHub's default proxy pid file sits in the working directory, where a hub started by
    another test run would find it and kill "its leftover" proxy: ours.
    """
    proxy = BIN / "configurable-http-proxy"
    if not proxy.exists():
        pytest.fail(f"{proxy} is missing: run the test command (make test), which installs it")
    api_port, hub_port, public_port = distinct_free_ports(3)
    return {
        "JupyterHub": {
            "cookie_secret_file": str(tmp_path / "jupyterhub_cookie_secret"),
            "hub_port": hub_port,
            # a prefix with an escaped space, like MockHub's default
            "bind_url": f"http://127.0.0.1:{public_port}/@/space%20word/",
        },
        "ConfigurableHTTPProxy": {
            "command": [str(proxy)],
            "api_url": f"http://127.0.0.1:{api_port}",
            "pid_file": str(tmp_path / "jupyterhub-proxy.pid"),
        },
    }


@pytest.fixture(autouse=True)
def _identity_file_stays_with_its_server():
    """A server extension started in this process exports its managed identity's file for
    the kernels it starts (``MLFACTORY_IDENTITY_FILE``, as in a real server); the next test's
    ``mlfactory.data`` client must not find a file of a server that is gone."""
    before = os.environ.get("MLFACTORY_IDENTITY_FILE")
    yield
    if before is None:
        os.environ.pop("MLFACTORY_IDENTITY_FILE", None)
    else:
        os.environ["MLFACTORY_IDENTITY_FILE"] = before
