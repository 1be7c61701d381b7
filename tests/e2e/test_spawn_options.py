"""Saved spawn options on a real hub: JupyterHub saves a request's ``user_options`` before the
spawn and re-uses them for a request without any, so a refused request must not leave its
options saved. A request without options gets the last valid choice, else the default.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
import requests

from .conftest import RealHub, discard_hub, prepare_hub, rest_token, start_hub

pytestmark = [pytest.mark.hub]

BAD = {"user_options": {"profile": "no-such-profile-xyz"}}


class Admin:
    """The admin's REST client for one hub."""

    def __init__(self, hub: RealHub) -> None:
        self.url = f"{hub.url}/hub/api/users/admin"
        self.headers = {"Authorization": f"token {rest_token(hub)}"}

    def start(self, server: str, body: dict) -> requests.Response:
        return requests.post(self._path(server), json=body, headers=self.headers, timeout=120)

    def stop(self, server: str) -> None:
        r = requests.delete(self._path(server), headers=self.headers, timeout=120)
        assert r.status_code in (202, 204), r.text
        self._wait(lambda: server not in self.servers(), f"{server or 'default'} to stop")

    def ready(self, server: str) -> dict:
        """The server's model once it is ready."""
        return self._wait(lambda: self.servers().get(server, {}).get("ready") and
                          self.servers()[server], f"{server or 'default'} to start")  # fmt: skip

    def servers(self) -> dict:
        r = requests.get(self.url, headers=self.headers, timeout=60)
        assert r.status_code == 200, r.text
        return r.json()["servers"]

    def _path(self, server: str) -> str:
        return f"{self.url}/servers/{server}" if server else f"{self.url}/server"

    @staticmethod
    def _wait(predicate, what: str, timeout: float = 120):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            value = predicate()
            if value:
                return value
            time.sleep(0.25)  # polling a real hub
        raise AssertionError(f"timed out waiting for {what}")


def profile_of(server: dict) -> str:
    """The profile the server was started with, from its saved state (the ledger session)."""
    return server["state"]["mlfactory"]["ledger"]["profile"]


@pytest.fixture(scope="module")
def hub() -> Iterator[RealHub]:
    data, config_path = prepare_hub("options")
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


def test_refused_options_then_none_start_the_default(hub):
    admin = Admin(hub)
    r = admin.start("", BAD)
    assert r.status_code == 400, r.text
    assert "Invalid choice for profile" in r.json()["message"]

    r = admin.start("", {})  # no options: the default, not the refused choice
    assert r.status_code in (201, 202), r.text
    server = admin.ready("")
    assert profile_of(server) == "cpu-small"  # the default group's default profile
    assert server["user_options"] == {}
    admin.stop("")


def test_refused_options_then_none_start_the_last_valid_choice(hub):
    admin = Admin(hub)
    r = admin.start("work", {"user_options": {"profile": "cpu-medium"}})
    assert r.status_code in (201, 202), r.text
    assert profile_of(admin.ready("work")) == "cpu-medium"
    admin.stop("work")

    r = admin.start("work", BAD)
    assert r.status_code == 400, r.text
    r = admin.start("work", {})
    assert r.status_code in (201, 202), r.text
    server = admin.ready("work")
    assert profile_of(server) == "cpu-medium"
    assert server["user_options"] == {"profile": "cpu-medium"}
    admin.stop("work")
