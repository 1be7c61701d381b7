"""Workspace shares at the platform service: the pure rules, and the routes through the
``service`` fixture (the real tornado app against the stand-in hub), every answer held to
the OpenAPI document. The real hub's side is in tests/e2e/test_workspace_share.py."""

from __future__ import annotations

import pytest
from mlfactory.service.shares import USERS_RULE
from mlfactory.service.workspace_share_api import grantees, may_manage, parse_recipient

from .helpers import platform_with
from .test_shares import Caller

LIST = "/api/workspace-shares"
NAMED = "/api/workspace-shares/{server}"


# --- pure ---------------------------------------------------------------------------------


def test_grantees_from_the_hubs_share_models():
    items = [
        {"kind": "group", "group": {"name": "analysts"}, "user": None, "created_at": "t2"},
        {"kind": "user", "user": {"name": "carol"}, "group": None, "created_at": "t1"},
        {"kind": "user", "user": {"name": "bob"}, "group": None, "created_at": "t0"},
        {"kind": "user", "user": None},  # malformed: skipped
        {"kind": "robot", "robot": {"name": "x"}},
    ]
    assert grantees(items) == [
        {"kind": "user", "name": "bob", "created_at": "t0"},
        {"kind": "user", "name": "carol", "created_at": "t1"},
        {"kind": "group", "name": "analysts", "created_at": "t2"},
    ]


@pytest.mark.parametrize(
    ("body", "words"),
    [
        ({}, "Name one recipient"),
        ({"user": "bob", "group": "g"}, "Name one recipient"),
        ({"user": ""}, "without '/'"),
        ({"group": "a/b"}, "without '/'"),
        ({"user": 7}, "without '/'"),
        ({"user": "alice"}, "your own server"),
    ],
)
def test_bad_recipients_are_named(body, words):
    with pytest.raises(ValueError, match=words):
        parse_recipient(body, "alice")


def test_a_recipient():
    assert parse_recipient({"group": "alice"}, "alice") == ("group", "alice")
    assert parse_recipient({"user": "bob"}, "alice") == ("user", "bob")


@pytest.mark.parametrize(
    ("scopes", "server", "ok"),
    [
        (["access:servers!server=alice/"], "", True),  # the default server's own token
        (["access:servers!server=alice/lab2"], "lab2", True),
        (["access:servers!user=alice"], "lab2", True),  # alice's API token
        (["access:servers"], "", True),
        (["access:servers!server=alice/lab2"], "", False),  # another of her servers
        (["access:servers!server=bob/"], "", False),  # a server shared with alice
        (["access:services!service=mlfactory", "read:users:name"], "", False),
        ([], "", False),
    ],
)
def test_who_speaks_for_a_server(scopes, server, ok):
    assert may_manage(scopes, "alice", server) is ok


def test_an_admin_speaks_for_their_servers():
    assert may_manage([], "root", "", admin=True)


# --- routes -------------------------------------------------------------------------------


@pytest.fixture
def people(hub_state) -> dict[str, str]:
    return {
        # alice's server's own token, as the hub gives it (its scopes resolved)
        "alice": hub_state.add_user(
            "alice", groups=("ds",), scopes=("access:servers!server=alice/",)
        ),
        "bob": hub_state.add_user("bob"),
        "carol": hub_state.add_user("carol", groups=("ds",)),
        "mallory": hub_state.add_user("mallory", groups=("ml",)),
    }


@pytest.fixture
def data_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


async def test_only_a_token_for_the_server_manages_its_shares(service, people, data_dir):
    call = Caller(await service())
    # bob's token reaches the service but speaks for none of his servers
    for method, body, query in (
        ("GET", None, ""),
        ("POST", {"user": "carol"}, ""),
        ("DELETE", None, "?user=carol"),
    ):
        code, answer, _ = await call(method, LIST, people["bob"], body, query)
        assert code == 403, answer
        assert "Only the owner of a server can share it" in answer["error"]
    # alice's default server's token does not speak for her server "lab2"
    code, answer, _ = await call("GET", NAMED, people["alice"], server="lab2")
    assert code == 403 and "alice/lab2" in answer["error"]


async def test_the_sharing_rules_refuse_before_the_hub_is_asked(service, people, data_dir):
    call = Caller(await service(platform_with(sharing={"users": "same-group"})))
    alice = people["alice"]
    code, answer, _ = await call("POST", LIST, alice, {"user": "bob"})
    assert code == 403 and "'bob'" in answer["error"] and USERS_RULE in answer["error"]
    for body, says in (({"group": "ml"}, "'ml'"), ({"user": "nobody"}, "'nobody'")):
        code, answer, _ = await call("POST", LIST, alice, body)
        assert code == 404 and says in answer["error"], answer
    code, answer, _ = await call("POST", LIST, alice, {"user": "alice"})
    assert code == 400 and "your own server" in answer["error"]
    # carol shares "ds" with alice: allowed, so the hub is asked; the stand-in hub has no
    # shares API and answers 404, which reads as a server alice does not have
    code, answer, _ = await call("POST", LIST, alice, {"user": "carol"})
    assert code == 404 and "no server named ''" in answer["error"], answer


async def test_a_bad_revoke_is_named(service, people, data_dir):
    call = Caller(await service())
    code, answer, _ = await call("DELETE", LIST, people["alice"], None, "?user=a&group=b")
    assert code == 400 and "Name one recipient" in answer["error"]
