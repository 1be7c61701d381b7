"""Tokens the hub no longer accepts stop working everywhere within seconds, on a real hub:
an expired token and a deleted user's token, on the platform service and on the user's
own server (started with the shipped example config). The hub refuses them on the next
request; the service and the server keep the hub's answers a few seconds at most.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

import pytest
import requests

from .conftest import RealHub, discard_hub, prepare_hub, rest_token, start_hub

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
def admin(hub: RealHub) -> dict[str, str]:
    return {"Authorization": f"token {rest_token(hub)}"}


def poll(predicate: Callable[[], object], deadline_s: float, what: Callable[[], str]) -> object:
    """Poll real processes until ``predicate`` is truthy; fail after ``deadline_s``."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {deadline_s}s: {what()}")
        time.sleep(0.1)  # polling real processes, not the clock under test


def user_with_server(hub: RealHub, admin: dict[str, str], name: str) -> None:
    """Create ``name`` and start their default server with the cheapest profile."""
    r = requests.post(f"{hub.url}/hub/api/users/{name}", headers=admin, timeout=30)
    assert r.status_code == 201, r.text
    r = requests.post(
        f"{hub.url}/hub/api/users/{name}/server",
        json={"profile": "cpu-small"},
        headers=admin,
        timeout=120,
    )
    assert r.status_code in (201, 202), r.text

    def ready() -> bool:
        model = requests.get(f"{hub.url}/hub/api/users/{name}", headers=admin, timeout=30).json()
        return bool(model["servers"].get("", {}).get("ready"))

    poll(ready, 180, lambda: f"{name}'s server ready:\n{hub.log()[-3000:]}")


def new_token(hub: RealHub, admin: dict[str, str], user: str, expires_in: int) -> str:
    r = requests.post(
        f"{hub.url}/hub/api/users/{user}/tokens",
        json={"note": "e2e token test", "expires_in": expires_in},
        headers=admin,
        timeout=30,
    )
    assert r.status_code == 201, r.text
    return r.json()["token"]


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
    r = requests.get(
        f"{hub.url}/hub/api/user", headers={"Authorization": f"token {token}"}, timeout=30
    )
    return r.status_code == 200


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
    user_with_server(hub, admin, "tess")
    urls = surfaces(hub, "tess")
    token = new_token(hub, admin, "tess", expires_in=6)
    assert answers(urls, token) == dict.fromkeys(urls, 200)  # used at once, so now cached

    # Keep using it until the hub refuses it, so every cache holds a fresh answer then
    poll(lambda: (answers(urls, token), not hub_accepts(hub, token))[1], 60, lambda: "expiry")
    assert_followed(hub, urls, token)


def test_a_deleted_users_token_stops_working_everywhere(hub, admin):
    user_with_server(hub, admin, "dora")
    urls = surfaces(hub, "dora")
    token = new_token(hub, admin, "dora", expires_in=900)
    assert answers(urls, token) == dict.fromkeys(urls, 200)

    r = requests.delete(f"{hub.url}/hub/api/users/dora", headers=admin, timeout=120)
    assert r.status_code == 204, r.text
    assert_followed(hub, urls, token)
