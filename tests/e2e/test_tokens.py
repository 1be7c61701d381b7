"""Tokens the hub no longer accepts stop working everywhere within seconds, on a real hub:
an expired token and a deleted user's token, on the platform service and on the user's
own server (started with the shipped example config). The hub refuses them on the next
request; the service and the server keep the hub's answers a few seconds at most.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import requests

from .conftest import RealHub, discard_hub, prepare_hub, start_hub
from .helpers import HubClient, poll

pytestmark = [pytest.mark.hub]

# The service and the server trust the hub's answer this long (+ a request): see
# mlfactory.service.app and mlfactory.spawner.singleuser (AUTH_CACHE_SECONDS = 2).
FOLLOW_WITHIN = 5


@pytest.fixture(scope="module")
def hub() -> Iterator[RealHub]:
    data, config_path = prepare_hub("tokens")  # the shipped example config
    hub = start_hub(data, config=config_path)
    yield hub
    discard_hub(hub, config_path)


@pytest.fixture(scope="module")
def admin(hub: RealHub) -> HubClient:
    return HubClient(hub)


def user_with_server(admin: HubClient, name: str) -> None:
    """Create ``name`` and start their default server with the cheapest profile."""
    r = admin.post(f"/hub/api/users/{name}")
    assert r.status_code == 201, r.text
    admin.spawn(user=name)
    admin.wait_ready(user=name, timeout=180)


def surfaces(hub: RealHub, user: str) -> dict[str, str]:
    """Where a user's token is honoured: the platform service and the user's server."""
    return {
        "service /api/me": f"{hub.url}/services/mlfactory/api/me",
        "server /mlfactory/api/info": f"{hub.url}/user/{user}/mlfactory/api/info",
        "server /api/contents/": f"{hub.url}/user/{user}/api/contents/",
    }


def answers(urls: dict[str, str], token: str) -> dict[str, int]:
    # no redirects followed: a server sends a browser without credentials to log in
    headers = {"Authorization": f"token {token}"}
    return {
        name: requests.get(url, headers=headers, allow_redirects=False, timeout=30).status_code
        for name, url in urls.items()
    }


def hub_accepts(hub: RealHub, token: str) -> bool:
    return HubClient(hub, token=token).get("/hub/api/user").status_code == 200


def assert_followed(hub: RealHub, urls: dict[str, str], token: str) -> None:
    """Once the hub refuses ``token``, each surface refuses it within FOLLOW_WITHIN s, and
    keeps refusing it."""
    assert not hub_accepts(hub, token)
    last: dict[str, int] = {}

    def all_refuse() -> bool:
        last.update(answers(urls, token))
        return all(status != 200 for status in last.values())

    poll(all_refuse, FOLLOW_WITHIN, lambda: f"every surface refuses the token: {last}")
    for name, status in answers(urls, token).items():
        # 403 from the API, or the browser's way: a redirect to log in again
        assert status in (302, 403), (name, status)


def test_an_expired_token_stops_working_everywhere(hub, admin):
    user_with_server(admin, "tess")
    urls = surfaces(hub, "tess")
    token = admin.new_token("tess", expires_in=6)
    assert answers(urls, token) == dict.fromkeys(urls, 200)  # used at once, so now cached

    # Keep using it until the hub refuses it, so every cache holds a fresh answer then
    poll(lambda: (answers(urls, token), not hub_accepts(hub, token))[1], 60, "expiry")
    assert_followed(hub, urls, token)


def test_a_deleted_users_token_stops_working_everywhere(hub, admin):
    user_with_server(admin, "dora")
    urls = surfaces(hub, "dora")
    token = admin.new_token("dora", expires_in=900)
    assert answers(urls, token) == dict.fromkeys(urls, 200)

    r = admin.delete("/hub/api/users/dora", timeout=120)
    assert r.status_code == 204, r.text
    assert_followed(hub, urls, token)
