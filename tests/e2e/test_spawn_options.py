"""Saved spawn options on a real hub: JupyterHub saves a request's ``user_options`` before the
spawn and re-uses them for a request without any, so a refused request must not leave its
options saved. A request without options gets the last valid choice, else the default.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .conftest import RealHub, discard_hub, prepare_hub, start_hub
from .helpers import HubClient

pytestmark = [pytest.mark.hub]

BAD = {"user_options": {"profile": "no-such-profile-xyz"}}


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
    admin = HubClient(hub)
    r = admin.start("", BAD)
    assert r.status_code == 400, r.text
    assert "Invalid choice for profile" in r.json()["message"]

    r = admin.start("", {})  # no options: the default, not the refused choice
    assert r.status_code in (201, 202), r.text
    server = admin.wait_ready("")
    assert profile_of(server) == "cpu-small"  # the default group's default profile
    assert server["user_options"] == {}
    admin.stop("")


def test_refused_options_then_none_start_the_last_valid_choice(hub):
    admin = HubClient(hub)
    r = admin.start("work", {"user_options": {"profile": "cpu-medium"}})
    assert r.status_code in (201, 202), r.text
    assert profile_of(admin.wait_ready("work")) == "cpu-medium"
    admin.stop("work")

    r = admin.start("work", BAD)
    assert r.status_code == 400, r.text
    r = admin.start("work", {})
    assert r.status_code in (201, 202), r.text
    server = admin.wait_ready("work")
    assert profile_of(server) == "cpu-medium"
    assert server["user_options"] == {"profile": "cpu-medium"}
    admin.stop("work")
