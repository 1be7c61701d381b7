"""Workspace shares: the pure rules (grantees.py), the doorkeeper that closes a revoked
visitor's websockets and forgets the hub's cached word on them, and the owner-only routes.
The hub's own behaviour is exercised for real in tests/e2e/test_workspace_share.py.
"""

from __future__ import annotations

import json

import pytest
from jupyterhub.services.auth import _ExpiringDict
from mlfactory.server import workspace_shares
from mlfactory.server.grantees import (
    Grantee,
    covers,
    parse_grant,
    stale_cache_keys,
    still_allowed,
    to_cut_off,
)
from mlfactory.server.workspace_shares import CLOSE_CODE, Doorkeeper
from tornado.httpclient import HTTPClientError

from .conftest import CALLER

ACCESS = frozenset({"access:servers!server=alice/", "access:servers!user=alice"})


# --- pure ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"user": "bob"}, Grantee("user", "bob")),
        ({"group": "analysts"}, Grantee("group", "analysts")),
    ],
)
def test_parse_grant(body, expected):
    assert parse_grant(body, "alice") == expected


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "Name one recipient"),
        ({"user": "bob", "group": "g"}, "Name one recipient"),
        ({"user": ""}, "1-255 characters"),
        ({"user": 3}, "1-255 characters"),
        ({"group": "a/b"}, "without '/'"),
        ({"user": "alice"}, "your own server"),
    ],
)
def test_parse_grant_refuses_with_words(body, words):
    with pytest.raises(ValueError, match=words):
        parse_grant(body, "alice")


@pytest.mark.parametrize(
    ("held", "required", "expected"),
    [
        ("access:servers!server=alice/", "access:servers!server=alice/", True),
        ("access:servers", "access:servers!server=alice/", True),  # an admin
        ("access:servers!user=alice", "access:servers!server=alice/", True),
        ("access:servers!user=alicia", "access:servers!server=alice/", False),
        ("access:servers!server=alice/gpu", "access:servers!server=alice/", False),
        ("access:servers!user=bob", "access:servers!server=alice/", False),
        ("read:servers", "access:servers!server=alice/", False),
        ("access:servers!server=alice/", "access:servers!user=alice", False),
    ],
)
def test_covers(held, required, expected):
    assert covers(held, required) is expected


def test_still_allowed_follows_the_hubs_fresh_answer():
    shared = {"name": "bob", "scopes": ["access:servers!server=alice/", "read:users:name"]}
    assert still_allowed(shared, ACCESS)
    assert not still_allowed({"name": "bob", "scopes": ["read:users:name"]}, ACCESS)
    assert not still_allowed(None, ACCESS)  # the hub no longer knows the token
    assert not still_allowed({"name": "bob"}, ACCESS)


def test_to_cut_off_never_the_owner():
    verdicts = {"bob": False, "carol": True, "alice": False}
    assert to_cut_off(verdicts, "alice") == {"bob"}
    assert to_cut_off(verdicts, None) == set()


def test_stale_cache_keys_name_only_the_users_entries():
    cache = {
        "token:s1:aaa": {"name": "bob"},
        "token:s2:bbb": {"name": "carol"},
        "token:s3:ccc": None,  # the hub said "nobody": nothing to drop
        "token:s4:ddd": {"name": "bob"},
    }
    assert sorted(stale_cache_keys(cache, {"bob"})) == ["token:s1:aaa", "token:s4:ddd"]


# --- the doorkeeper ----------------------------------------------------------------------------


class FakeSocket:
    """What the doorkeeper uses of a tornado WebSocketHandler."""

    def __init__(self) -> None:
        self.ws_connection: object | None = object()
        self.closed_with: tuple[int, str] | None = None

    def close(self, code: int, reason: str) -> None:
        self.closed_with = (code, reason)
        self.ws_connection = None


class Hub:
    """Answers about tokens as the hub would, changed by each test."""

    def __init__(self) -> None:
        self.models: dict[str, dict | None] = {}
        self.asked: list[str] = []

    async def check(self, token: str):
        self.asked.append(token)
        return self.models.get(token)


def _keeper(hub: Hub, cache=None) -> Doorkeeper:
    return Doorkeeper("alice", hub.check, ACCESS, cache, interval_s=3600)


async def test_a_revoked_visitor_loses_every_socket_and_cached_answer():
    hub = Hub()
    hub.models = {
        "bob-token": {"name": "bob", "scopes": ["access:servers!server=alice/"]},
        "carol-token": {"name": "carol", "scopes": ["access:servers!server=alice/"]},
    }
    cache = _ExpiringDict(max_age=300)
    cache["token:s:bob-token"] = hub.models["bob-token"]
    cache["token:s:carol-token"] = hub.models["carol-token"]
    keeper = _keeper(hub, cache)
    kernel, terminal, carols = FakeSocket(), FakeSocket(), FakeSocket()
    keeper.track(kernel, "bob", "bob-token")
    keeper.track(terminal, "bob", "bob-token")
    keeper.track(carols, "carol", "carol-token")
    try:
        assert await keeper.check_now() == set()
        assert kernel.closed_with is None

        hub.models["bob-token"] = {"name": "bob", "scopes": []}  # the share is gone
        assert await keeper.check_now() == {"bob"}
        assert kernel.closed_with == (CLOSE_CODE, workspace_shares.CLOSE_REASON)
        assert terminal.closed_with is not None
        assert carols.closed_with is None
        assert "token:s:bob-token" not in cache
        assert "token:s:carol-token" in cache
        assert set(keeper.visitors()) == {"carol"}
    finally:
        keeper.stop()


async def test_the_owner_is_never_tracked_nor_cut_off():
    hub = Hub()
    keeper = _keeper(hub)
    mine = FakeSocket()
    keeper.track(mine, "alice", "alice-token")
    assert keeper.visitors() == {}
    assert await keeper.check_now() == set()
    assert hub.asked == [] and mine.closed_with is None


async def test_a_hub_outage_closes_nothing():
    class DownHub(Hub):
        async def check(self, token):
            raise HTTPClientError(599, "timeout")

    keeper = _keeper(DownHub())
    sock = FakeSocket()
    keeper.track(sock, "bob", "bob-token")
    try:
        assert await keeper.check_now() == set()
        assert sock.closed_with is None
    finally:
        keeper.stop()


async def test_a_token_that_names_someone_else_is_refused():
    hub = Hub()
    hub.models["t"] = {"name": "mallory", "scopes": ["access:servers"]}
    keeper = _keeper(hub)
    sock = FakeSocket()
    keeper.track(sock, "bob", "t")
    try:
        assert await keeper.check_now() == {"bob"}
    finally:
        keeper.stop()


async def test_closed_sockets_are_forgotten():
    keeper = _keeper(Hub())
    sock = FakeSocket()
    keeper.track(sock, "bob", "bob-token")
    sock.ws_connection = None  # the visitor closed the tab
    try:
        assert keeper.visitors() == {}
    finally:
        keeper.stop()


def test_standalone_server_tracks_nobody():
    keeper = Doorkeeper(None, None, frozenset())
    keeper.track(FakeSocket(), "someone", "token")
    assert not keeper.active and keeper.visitors() == {}


# --- routes ------------------------------------------------------------------------------------


async def _status(jp_fetch, method="GET", **kwargs):
    try:
        r = await jp_fetch("mlfactory", "workspace-shares", method=method, **kwargs)
    except HTTPClientError as e:
        return e.code, json.loads(e.response.body)
    return r.code, json.loads(r.body)


@pytest.mark.parametrize(
    ("method", "kwargs"),
    [
        ("GET", {}),
        ("POST", {"body": json.dumps({"user": "carol"})}),
        ("DELETE", {"params": {"user": "carol"}}),
    ],
)
async def test_only_the_owner_manages_workspace_shares(
    hub_server_shared_with_caller, jp_fetch, method, kwargs
):
    code, reply = await _status(jp_fetch, method, **kwargs)
    assert code == 403
    assert "Only the owner of this server (bob)" in reply["message"]
    assert CALLER in reply["message"]


async def test_a_server_the_hub_did_not_start_cannot_be_shared(jp_fetch):
    code, reply = await _status(jp_fetch)
    assert code == 409 and "not started by JupyterHub" in reply["message"]


async def test_the_service_unreachable_is_said(hub_server_of_caller, monkeypatch, jp_fetch):
    from mlfactory.server import service_client

    from tests.ports import free_port

    monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{free_port()}/hub/api")
    monkeypatch.setenv(service_client.SERVICE_URL_ENV, f"http://127.0.0.1:{free_port()}")
    code, reply = await _status(jp_fetch)
    assert code == 503 and "cannot be reached" in reply["message"]
    assert "shares cannot be listed or changed" in reply["message"]


async def test_without_the_service_nothing_is_shared(hub_server_of_caller, monkeypatch, jp_fetch):
    """Only the platform service may grant shares at the hub: no service, no sharing."""
    from mlfactory.server import service_client

    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    monkeypatch.delenv(service_client.SERVICE_URL_ENV, raising=False)
    code, reply = await _status(jp_fetch, "POST", body=json.dumps({"user": "carol"}))
    assert code == 503 and "cannot be shared" in reply["message"]


@pytest.mark.parametrize(
    ("method", "kwargs", "words"),
    [
        ("POST", {"body": json.dumps({})}, "Name one recipient"),
        ("POST", {"body": json.dumps({"user": CALLER})}, "your own server"),
        ("DELETE", {}, "Name one recipient"),
        ("DELETE", {"params": {"group": "a/b"}}, "without '/'"),
    ],
)
async def test_bad_requests_are_named(
    hub_server_of_caller, monkeypatch, jp_fetch, method, kwargs, words
):
    monkeypatch.setenv("JUPYTERHUB_API_URL", "http://127.0.0.1:9/hub/api")
    code, reply = await _status(jp_fetch, method, **kwargs)
    assert code == 400 and words in reply["message"]


async def test_a_plain_mapping_cache_is_cleaned_too():
    hub = Hub()
    hub.models["t"] = {"name": "bob", "scopes": []}
    cache = {"token:s:t": {"name": "bob"}, "token:s:u": {"name": "carol"}}
    keeper = _keeper(hub, cache)
    sock = FakeSocket()  # tracked weakly: the server's handler holds it while it is open
    keeper.track(sock, "bob", "t")
    try:
        assert await keeper.check_now() == {"bob"}
        assert sock.closed_with is not None
        assert cache == {"token:s:u": {"name": "carol"}}
    finally:
        keeper.stop()


# --- the platform's sharing rules, through the route (a real platform service) -----------------


@pytest.fixture
async def ruled(monkeypatch, service, fake_hub, hub_state, hub_server_of_caller, tmp_path):
    """alice's server, spawned by the (stand-in) hub, pointed at a real platform service whose
    config says ``sharing.users: same-group``; alice is in "ds" with carol, bob in none."""
    from mlfactory.server import service_client

    from tests.service.helpers import platform_with

    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    svc = await service(platform_with(sharing={"users": "same-group"}))
    monkeypatch.setenv(service_client.SERVICE_URL_ENV, svc.url)
    monkeypatch.setenv("JUPYTERHUB_API_URL", fake_hub)
    # the server's own token: it may reach this server (``access:servers!server``)
    hub_state.add_user(
        CALLER, token="hub-api-token", groups=("ds",), scopes=(f"access:servers!server={CALLER}/",)
    )
    hub_state.add_user("carol", groups=("ds",))
    hub_state.add_user("bob")
    hub_state.add_user("mallory", groups=("ml",))
    return svc


@pytest.mark.parametrize(
    ("body", "code", "words"),
    [
        ({"user": "bob"}, 403, ("'bob'", "sharing.users: same-group")),
        ({"group": "ml"}, 404, ("'ml'", "sharing.groups: member")),  # exists, not alice's
        ({"group": "nope"}, 404, ("'nope'", "sharing.groups: member")),
        ({"user": "nobody"}, 404, ("'nobody'",)),
    ],
)
async def test_the_sharing_rules_refuse_before_the_hub_is_asked(ruled, jp_fetch, body, code, words):
    got, reply = await _status(jp_fetch, "POST", body=json.dumps(body))
    assert got == code, reply
    for w in words:
        assert w in reply["message"]


async def test_a_recipient_the_rules_allow_goes_on_to_the_hub(ruled, jp_fetch):
    """carol shares a group with alice: the rules let her through and the service asks the
    hub (the stand-in hub has no shares API, so its 404 is what comes back, not the rules')."""
    code, reply = await _status(jp_fetch, "POST", body=json.dumps({"user": "carol"}))
    assert code == 404, reply
    assert "no server named" in reply["message"] and "sharing." not in reply["message"]


async def test_rules_that_cannot_be_checked_share_nothing(
    hub_server_of_caller, monkeypatch, jp_fetch
):
    from mlfactory.server import service_client

    from tests.ports import free_port

    monkeypatch.setenv(service_client.SERVICE_URL_ENV, f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("JUPYTERHUB_API_URL", f"http://127.0.0.1:{free_port()}/hub/api")
    code, reply = await _status(jp_fetch, "POST", body=json.dumps({"user": "carol"}))
    assert code == 503 and "cannot be reached" in reply["message"]
