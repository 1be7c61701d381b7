"""Notebook shares: the rules (pure), the store on SQLite and PostgreSQL, and the service's
REST API and pages through the ``service`` fixture (the real tornado app, HubOAuth against
the stand-in hub), every answer held to the OpenAPI document."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyterhub.services.auth import HubOAuth
from mlfactory.service import previews
from mlfactory.service.app import make_app
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.hubapi import HubAPI
from mlfactory.service.periods import iso_utc
from mlfactory.service.previews import PREVIEW_CSP
from mlfactory.service.share_base import DIRECTORY_MAX_AGE, Directory, recipient_suggestions
from mlfactory.service.share_store import ShareStore
from mlfactory.service.shares import (
    GROUPS_RULE,
    USERS_RULE,
    Share,
    ShareError,
    check_create,
    check_expiry,
    check_notebook,
    check_path,
    check_recipients,
    check_update,
    is_live,
    may_copy,
    may_read,
    refusal_status,
    refused_recipients,
)
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.httpserver import HTTPServer
from tornado.web import create_signed_value

from tests.ports import free_port

from .helpers import PREFIX, T0, Clock, empty_database, platform_with
from .test_openapi import check_response

DAY = 86400.0


def notebook(*cells: Any, **metadata: Any) -> dict[str, Any]:
    nb = new_notebook(cells=list(cells) or [new_code_cell("1 + 1")], metadata=metadata)
    return json.loads(nbformat.writes(nb))


def hostile_notebook() -> dict[str, Any]:
    """Outputs that run script (fine, inside the sandbox) and text that must stay text."""
    return notebook(
        new_markdown_cell("# Results"),
        new_code_cell(
            "print('<script>alert(\"src\")</script>')",
            outputs=[
                new_output("stream", name="stdout", text='<script>alert("stdout")</script>\n'),
                new_output(
                    "display_data",
                    data={
                        "text/html": '<script>window.ran = "html-output"</script>',
                        "text/plain": "<figure>",
                    },
                ),
                new_output(
                    "display_data",
                    data={
                        "image/svg+xml": '<svg xmlns="http://www.w3.org/2000/svg" '
                        'onload="alert(\'svg\')"><rect width="1" height="1"/></svg>',
                    },
                ),
            ],
        ),
    )


# --- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["../x.ipynb", "/etc/x.ipynb", "a/../../x.ipynb", "a\\b.ipynb", "c:x.ipynb", "a//b.ipynb",
     "./a.ipynb", "a.py", "", "x\x00.ipynb", None, 3],
)  # fmt: skip
def test_paths_are_relative_notebooks(bad):
    with pytest.raises(ShareError) as e:
        check_path(bad)
    assert (e.value.status, e.value.field) == (400, "path")


def test_good_paths():
    assert check_path("a/b c/Report (final).ipynb") == "a/b c/Report (final).ipynb"


def test_recipients_drop_yourself_and_duplicates():
    assert check_recipients(
        ["bob", "alice", " bob ", "carol"], ["ds", "ds"], owner="alice", max_recipients=10
    ) == (("bob", "carol"), ("ds",))
    for users, groups, says in (
        (["alice"], [], "at least one other"),
        ([], None, "at least one other"),
        (["a", "b", "c"], ["d"], "at most 3"),
        ("bob", [], "users: a list"),
        ([""], [], "users: a list"),
        ([], [7], "groups: a list"),
    ):
        with pytest.raises(ShareError) as e:
            check_recipients(users, groups, owner="alice", max_recipients=3)
        assert e.value.status == 400 and says in e.value.message, (users, groups)


def test_notebook_shape_and_size():
    nb = notebook()
    text = check_notebook(nb, 10_000)
    assert json.loads(text) == nb and text.endswith("\n")
    with pytest.raises(ShareError) as e:
        check_notebook(nb, len(text) - 1)
    assert e.value.status == 413 and f"{len(text):,} bytes" in e.value.message
    assert "Clear" in e.value.message
    for bad in ([], {"nbformat": 3, "cells": []}, {"nbformat": 4}, "x"):
        with pytest.raises(ShareError) as e:
            check_notebook(bad, 10_000)
        assert (e.value.status, e.value.field) == (400, "notebook")


def test_expiry():
    assert check_expiry(None, T0) is None
    assert check_expiry("2026-11-11T12:00:00Z", T0) == T0 + DAY
    assert check_expiry("2026-11-11T13:00:00+01:00", T0) == T0 + DAY
    for bad in ("2026-11-10T12:00:00Z", "2026-11-11T12:00:00", "tomorrow", 5):
        with pytest.raises(ShareError) as e:
            check_expiry(bad, T0)
        assert (e.value.status, e.value.field) == (400, "expires_at")


def test_create_and_update_requests():
    body = {"path": "a.ipynb", "notebook": notebook(), "users": ["bob"], "owner": "mallory"}
    req = check_create(body, owner="alice", now=T0, max_bytes=10**6, max_recipients=5)
    assert (req.mode, req.users, req.groups, req.message, req.expires_at) == (
        "view", ("bob",), (), "", None
    )  # fmt: skip
    share = _share(users=("bob",), groups=("ds",))
    up = check_update({"message": " hi "}, share, now=T0, max_bytes=10**6, max_recipients=5)
    assert (up.message, up.users, up.notebook, up.expiry_given) == ("hi", None, None, False)
    up = check_update({"groups": []}, share, now=T0, max_bytes=10**6, max_recipients=5)
    assert (up.users, up.groups) == (("bob",), ())  # the users stay as they were
    up = check_update({"expires_at": None}, share, now=T0, max_bytes=10**6, max_recipients=5)
    assert up.expiry_given and up.expires_at is None


def test_whom_an_owner_may_name():
    groups = {"ds": ["alice", "bob"], "ml": ["carol"], "empty": []}
    users = {"alice", "bob", "carol"}

    def refused(u=(), g=(), admin=False, **kw):
        return refused_recipients(
            u, g, existing_users=users, existing_groups=groups, owner_groups=["ds"],
            owner_is_admin=admin, **kw,
        )  # fmt: skip

    assert refused(["bob", "carol"], ["ds"]) == []
    assert refused(["nobody"]) == [("users", "No hub user is named 'nobody'.")]
    # a group the owner is not in reads like one that does not exist
    (not_mine,) = refused(g=["ml"])
    (missing,) = refused(g=["nope"])
    assert not_mine[0] == missing[0] == "groups"
    assert "'ml'" in not_mine[1] and not_mine[1].replace("'ml'", "'nope'") == missing[1]
    assert refused(g=["ml", "empty"], admin=True) == []
    assert refused(g=["ml"], group_policy="any") == []
    assert refused(g=["nope"], admin=True)[0][0] == "groups"
    assert refused(["carol"], user_policy="same-group")[0][0] == "users"
    assert refused(["bob"], user_policy="same-group") == []
    assert refused(["carol"], user_policy="same-group", admin=True) == []
    # a refusal names the rule, so the person refused knows it is policy, not a typo
    assert USERS_RULE in refused(["carol"], user_policy="same-group")[0][1]
    assert GROUPS_RULE in not_mine[1]
    assert GROUPS_RULE not in refused(g=["nope"], group_policy="any")[0][1]


def test_the_same_group_rule_alone_is_a_403():
    same = [("users", f"'carol' is in none of your groups ({USERS_RULE}).")]
    missing = [("users", "No hub user is named 'nobody'.")]
    assert refusal_status(same) == 403
    assert refusal_status(missing) == 404
    assert refusal_status(same + missing) == 404
    assert refusal_status([("groups", f"No group named 'ml' ({GROUPS_RULE}).")]) == 404


def test_suggestions_follow_the_sharing_rules():
    groups = {"analysts": ["bob", "carol"], "ds": ["alice", "bob"], "ml": ["mallory"]}
    users = ["alice", "bob", "Boris", "carol", "mallory"]

    def suggest(q, me="alice", admin=False, limit=20, **kw):
        kw = {"group_policy": "member", "user_policy": "any", **kw}
        return recipient_suggestions(
            q, users=users, groups=groups, me=me, my_groups=["ds"], is_admin=admin, limit=limit,
            **kw,
        )  # fmt: skip

    got = suggest("bo")
    assert (got["users"], got["groups"], got["truncated"]) == (["bob", "Boris"], [], False)
    assert suggest("")["users"] == ["bob", "Boris", "carol", "mallory"]  # never yourself
    assert suggest("a")["groups"] == []  # analysts exists, but alice is not in it
    assert suggest("d")["groups"] == ["ds"]
    assert suggest("a", admin=True)["groups"] == ["analysts"]
    assert suggest("", group_policy="any")["groups"] == ["analysts", "ds", "ml"]
    assert suggest("", user_policy="same-group")["users"] == ["bob"]
    assert suggest("", user_policy="same-group", admin=True)["users"] == [
        "bob", "Boris", "carol", "mallory"
    ]  # fmt: skip
    capped = suggest("", limit=2)
    assert len(capped["users"]) == 2 and capped["truncated"]
    assert suggest("BO")["users"] == ["bob", "Boris"]  # any case


def _share(**kw: Any) -> Share:
    args = {
        "id": "a" * 16, "owner": "alice", "path": "a.ipynb", "mode": "view", "message": "",
        "created_at": T0, "updated_at": T0, "version": 1,
    }  # fmt: skip
    args.update(kw)
    return Share(**args)


def test_who_reads_and_copies():
    s = _share(users=("bob",), groups=("ds",), expires_at=T0 + DAY)
    assert may_read(s, "bob", [], T0) and may_read(s, "carol", ["ds"], T0)
    assert not may_read(s, "carol", ["ml"], T0)
    assert not may_read(s, "bob", [], T0 + DAY) and may_read(s, "alice", [], T0 + DAY)
    assert not may_copy(s, "bob", [], T0) and may_copy(s, "alice", [], T0)
    c = _share(users=("bob",), mode="copy")
    assert may_copy(c, "bob", [], T0)
    revoked = _share(users=("bob",), mode="copy", revoked_at=T0)
    assert not is_live(revoked, T0) and not may_copy(revoked, "bob", [], T0)


# --- the store on both databases -------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgresql"])
def engine(request, tmp_path):
    eng = make_engine(empty_database(request, tmp_path))
    upgrade(eng)
    yield eng
    eng.dispose()


async def test_store_versions_received_and_revocation(engine, tmp_path):
    clock = Clock()
    store = ShareStore(engine, tmp_path / "shares", clock)
    body = {"path": "w/a.ipynb", "notebook": notebook(), "users": ["bob"], "groups": ["ds"]}
    req = check_create(body, owner="alice", now=clock(), max_bytes=10**6, max_recipients=9)
    share = await store.create("alice", req)
    assert (share.version, share.users, share.groups) == (1, ("bob",), ("ds",))
    other = await store.create(
        "carol",
        check_create({**body, "users": ["alice"], "groups": []}, owner="carol", now=clock(),
                     max_bytes=10**6, max_recipients=9),
    )  # fmt: skip
    clock.advance(60)
    newer = notebook(new_code_cell("2 + 2"))
    up = check_update({"notebook": newer, "mode": "copy"}, share, now=clock(), max_bytes=10**6,
                      max_recipients=9)  # fmt: skip
    share = await store.update(share, "alice", up)
    assert (share.version, share.mode, share.updated_at) == (2, "copy", T0 + 60)
    assert json.loads(await store.snapshot(share, 1)) == body["notebook"]  # immutable
    assert json.loads(await store.snapshot(share, 2)) == newer
    assert [v["version"] for v in await store.versions(share.id)] == [1, 2]

    assert [s.id for s in await store.received("bob", [], clock())] == [share.id]
    assert [s.id for s in await store.received("dan", ["ds"], clock())] == [share.id]
    assert [s.id for s in await store.received("alice", ["ds"], clock())] == [other.id]
    assert await store.received("erin", ["ml"], clock()) == []

    await store.revoke(share, "alice")
    assert await store.received("bob", [], clock()) == []
    assert [s.id for s in await store.mine("alice")] == [share.id]
    events = await store.audit(0, clock() + 1, share.id, None, 10)
    assert [e["action"] for e in events] == ["revoke", "update", "share"]
    assert events[1]["detail"] == {"mode": "copy", "new_version": True}


# --- the REST API and the pages -------------------------------------------------------------


@pytest.fixture
def data_dir(monkeypatch, tmp_path) -> Path:
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    return tmp_path / "data" / "hub" / "shares"


@pytest.fixture
async def svc(service, data_dir):
    return await service()


class Caller:
    """Calls one route and holds every /api/ answer to the OpenAPI document."""

    def __init__(self, svc: Any) -> None:
        self.svc = svc

    async def __call__(
        self, method: str, template: str, token: str, body: Any = None, query: str = "", **p: str
    ) -> tuple[int, Any, dict]:
        url = template.format(**p) if p else template
        code, answer, headers = await self.svc.call(method, url + query, token=token, body=body)
        if template.startswith("/api/"):
            check_response(method, template.replace("{sid}", "{id}"), code, headers, answer)
        return code, answer, headers


SHARES = "/api/shares"
ONE = "/api/shares/{sid}"
COPY = "/api/shares/{sid}/copy"
RECEIVED = "/api/shares/received"
AUDIT = "/api/shares/audit"


@pytest.fixture
def people(hub_state) -> dict[str, str]:
    return {
        "alice": hub_state.add_user("alice", groups=("ds",)),
        "bob": hub_state.add_user("bob"),
        "carol": hub_state.add_user("carol", groups=("ds",)),
        "mallory": hub_state.add_user("mallory", groups=("ml",)),
        "root": hub_state.add_user("root", admin=True),
    }


async def test_share_receive_preview_copy_update_revoke(svc, people, clock, data_dir):
    call = Caller(svc)
    alice, bob, carol, mallory = (people[n] for n in ("alice", "bob", "carol", "mallory"))
    nb = hostile_notebook()
    body = {
        "path": "reports/q4.ipynb", "notebook": nb, "users": ["bob", "alice"], "groups": ["ds"],
        "mode": "view", "message": "<b>Have a look</b>", "owner": "mallory",
    }  # fmt: skip
    code, answer, _ = await call("POST", SHARES, alice, body)
    assert code == 201, answer
    share = answer["share"]
    sid = share["id"]
    assert (share["owner"], share["users"], share["groups"], share["version"]) == (
        "alice", ["bob"], ["ds"], 1
    )  # fmt: skip
    assert share["status"] == "active" and share["name"] == "q4.ipynb"
    assert (data_dir / sid / "v1.ipynb").is_file()

    # shared with me: bob by name, carol through ds; not mallory, not alice herself
    for who, expected in ((bob, [sid]), (carol, [sid]), (mallory, []), (alice, [])):
        code, answer, _ = await call("GET", RECEIVED, who)
        assert code == 200 and [s["id"] for s in answer["shares"]] == expected
    code, answer, _ = await call("GET", RECEIVED, bob)
    seen = answer["shares"][0]
    assert (seen["owner"], seen["message"], seen["version"]) == ("alice", "<b>Have a look</b>", 1)
    assert "users" not in seen and "path" not in seen  # who else got it is the owner's business
    code, answer, _ = await call("GET", SHARES, alice)
    assert [s["id"] for s in answer["shares"]] == [sid]

    # someone it is not shared with learns nothing: the same 404 as a made-up id
    code, hidden, _ = await call("GET", ONE, mallory, sid=sid)
    code2, missing, _ = await call("GET", ONE, mallory, sid="0" * 16)
    assert (code, code2) == (404, 404) and hidden == missing
    code, answer, _ = await call("GET", ONE, bob, sid=sid)
    assert code == 200 and "versions" not in answer["share"]
    code, answer, _ = await call("GET", ONE, alice, sid=sid)
    assert [v["version"] for v in answer["share"]["versions"]] == [1]

    # the preview: sandboxed, scripts in outputs kept (inside the sandbox), text escaped
    code, page, headers = await call("GET", f"/shares/{sid}/preview", bob)
    assert code == 200 and headers["Content-Type"].startswith("text/html")
    assert headers["Content-Security-Policy"] == PREVIEW_CSP
    assert "allow-same-origin" not in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert '<script>window.ran = "html-output"</script>' in page  # output HTML, sandboxed
    # nbconvert inlines SVG as an <img>, where its onload never runs
    assert "data:image/svg+xml;base64," in page and "onload" not in page
    assert '<script>alert("stdout")</script>' not in page
    assert '&lt;script&gt;alert("stdout")&lt;/script&gt;' in page  # a stream is text
    assert '&lt;script&gt;alert("src")&lt;/script&gt;' in page  # so is the source
    assert "<script>alert(" not in page
    assert (data_dir / sid / "v1.html").is_file()  # rendered once, then served from here
    code, _, headers = await call("GET", f"/shares/{sid}/preview", mallory)
    assert code == 404 and "Content-Security-Policy" not in headers

    # the link's page: names and message escaped, the preview framed, no script of its own
    code, page, headers = await call("GET", f"/shares/{sid}", carol)
    assert code == 200 and "&lt;b&gt;Have a look&lt;/b&gt;" in page and "<b>Have" not in page
    assert f'src="/services/mlfactory/shares/{sid}/preview?version=1"' in page
    assert 'sandbox="allow-scripts"' in page and "<script" not in page
    assert "script-src" not in headers["Content-Security-Policy"]
    assert "frame-ancestors 'self'" in headers["Content-Security-Policy"]

    # a view share gives no copy; only the owner may change it
    code, answer, _ = await call("POST", COPY, bob, sid=sid)
    assert code == 403 and "view only" in answer["error"]
    code, answer, _ = await call("PATCH", ONE, bob, {"mode": "copy"}, sid=sid)
    assert code == 403
    clock.advance(3600)
    newer = notebook(new_code_cell("x = 2"))
    code, answer, _ = await call("PATCH", ONE, alice, {"mode": "copy", "notebook": newer}, sid=sid)
    assert code == 200 and (answer["share"]["version"], answer["share"]["mode"]) == (2, "copy")
    assert answer["share"]["updated_at"] == iso_utc(clock())

    code, answer, _ = await call("POST", COPY, bob, sid=sid)
    assert code == 200, answer
    assert (answer["version"], answer["path"], answer["notebook"]) == (2, "reports/q4.ipynb", newer)
    code, answer, _ = await call("POST", COPY, bob, sid=sid, query="?version=1")
    assert answer["notebook"] == nb  # the first snapshot is still there, unchanged
    code, answer, _ = await call("POST", COPY, bob, sid=sid, query="?version=3")
    assert code == 404

    # revoked: gone from lists, and its link answers 404 at once
    code, answer, _ = await call("DELETE", ONE, alice, sid=sid)
    assert code == 200 and answer["share"]["status"] == "revoked"
    code, answer, _ = await call("GET", RECEIVED, bob)
    assert answer["shares"] == []
    for path in (f"/shares/{sid}", f"/shares/{sid}/preview"):
        code, _, _ = await call("GET", path, bob)
        assert code == 404
    code, _, _ = await call("POST", COPY, bob, sid=sid)
    assert code == 404
    code, answer, _ = await call("PATCH", ONE, alice, {"message": "again"}, sid=sid)
    assert code == 409

    # the audit: every share, open (a preview served; the link's page frames one), copy,
    # update and revoke; admins only
    code, answer, _ = await call("GET", AUDIT, alice)
    assert code == 403
    code, answer, _ = await call("GET", AUDIT, people["root"], query=f"?share={sid}")
    assert code == 200
    assert [(e["actor"], e["action"]) for e in reversed(answer["events"])] == [
        ("alice", "share"), ("bob", "open"), ("alice", "update"),
        ("bob", "copy"), ("bob", "copy"), ("alice", "revoke"),
    ]  # fmt: skip
    code, answer, _ = await call("GET", AUDIT, people["root"], query="?user=bob&limit=1")
    assert [e["action"] for e in answer["events"]] == ["copy"]
    code, answer, _ = await call("GET", AUDIT, people["root"], query="?limit=0")
    assert code == 400 and answer["field"] == "limit"


async def test_expiry_hides_a_share_at_once(svc, people, clock):
    call = Caller(svc)
    body = {"path": "a.ipynb", "notebook": notebook(), "users": ["bob"], "mode": "copy",
            "expires_at": iso_utc(clock() + 3600)}  # fmt: skip
    code, answer, _ = await call("POST", SHARES, people["alice"], body)
    assert code == 201
    sid = answer["share"]["id"]
    code, answer, _ = await call("GET", RECEIVED, people["bob"])
    assert len(answer["shares"]) == 1
    clock.advance(3600)
    code, answer, _ = await call("GET", RECEIVED, people["bob"])
    assert answer["shares"] == []
    for method, path in (("GET", ONE), ("POST", COPY)):
        code, _, _ = await call(method, path, people["bob"], sid=sid)
        assert code == 404
    code, answer, _ = await call("GET", SHARES, people["alice"])
    assert answer["shares"][0]["status"] == "expired"
    # the owner may extend it; it is back for bob
    until = iso_utc(clock() + DAY)
    code, answer, _ = await call("PATCH", ONE, people["alice"], {"expires_at": until}, sid=sid)
    assert code == 200 and answer["share"]["status"] == "active"
    code, answer, _ = await call("GET", RECEIVED, people["bob"])
    assert len(answer["shares"]) == 1


async def test_bad_recipients_and_requests(svc, people, data_dir):
    call = Caller(svc)
    alice = people["alice"]
    base = {"path": "a.ipynb", "notebook": notebook()}
    for extra, code_, field, says in (
        ({"users": ["nobody"]}, 404, "users", "'nobody'"),
        ({"groups": ["ml"]}, 404, "groups", "'ml'"),  # exists, alice is not in it
        ({"groups": ["nope"]}, 404, "groups", "'nope'"),
        ({"users": ["alice"]}, 400, "users", "at least one other"),
        ({"users": ["bob"], "mode": "edit"}, 400, "mode", "mode"),
        ({"users": ["bob"], "path": "../../etc/a.ipynb"}, 400, "path", ".."),
        ({"users": ["bob"], "notebook": {"cells": []}}, 400, "notebook", "nbformat 4"),
        ({"users": ["bob"], "notebook": {**notebook(), "cells": [{"cell_type": "x"}]}}, 400,
         "notebook", "not a valid notebook"),
        ({"users": ["bob"], "expires_at": "2020-01-01T00:00:00Z"}, 400, "expires_at", "future"),
    ):  # fmt: skip
        code, answer, _ = await call("POST", SHARES, alice, {**base, **extra})
        assert (code, answer.get("field")) == (code_, field), (extra, answer)
        assert says in answer["error"], answer
    assert not data_dir.exists() or not any(data_dir.iterdir())  # nothing stored
    # an admin may share with any group
    code, answer, _ = await call("POST", SHARES, people["root"], {**base, "groups": ["ml"]})
    assert code == 201


async def test_recipient_search(svc, people, hub_state, clock):
    call = Caller(svc)
    hub_state.add_user("bobby", groups=("ml",))
    code, answer, _ = await call("GET", "/api/shares/recipients", people["alice"], query="?q=bo")
    assert code == 200, answer
    assert answer == {"query": "bo", "users": ["bob", "bobby"], "groups": [], "truncated": False}
    code, answer, _ = await call("GET", "/api/shares/recipients", people["alice"], query="?q=")
    assert "alice" not in answer["users"] and answer["groups"] == ["ds"]  # not ml: not hers
    code, answer, _ = await call("GET", "/api/shares/recipients", people["root"], query="?q=m")
    assert (answer["users"], answer["groups"]) == (["mallory"], ["ml"])  # admins: every group
    code, answer, _ = await call(
        "GET", "/api/shares/recipients", people["alice"], query="?q=&limit=1"
    )
    assert len(answer["users"]) == 1 and answer["truncated"]
    for bad in ("?limit=0", "?limit=51", "?limit=x", "?q=" + "x" * 256):
        code, answer, _ = await call("GET", "/api/shares/recipients", people["alice"], query=bad)
        assert code == 400, bad

    # the hub's lists are reused a while, then asked again; the last answer outlives a hub
    # that is away, and with none yet the caller is told to try again


async def test_the_directory_is_reused_then_asked_again(fake_hub, hub_state, clock):
    """The hub's lists are reused a while, then asked again; the last answer outlives a hub
    that is away; with none yet, the caller hears of it."""
    hub_state.add_user("bob")
    hub = HubAPI(fake_hub, "service-token")
    directory = Directory(clock)
    users, _ = await directory.load(hub)
    assert users == ["bob"]
    hub_state.add_user("bodil", groups=("ds",))
    assert (await directory.load(hub))[0] == ["bob"]
    clock.advance(DIRECTORY_MAX_AGE)
    users, groups = await directory.load(hub)
    assert users == ["bob", "bodil"] and groups == {"ds": ["bodil"]}
    hub_state.down = True
    clock.advance(DIRECTORY_MAX_AGE)
    assert (await directory.load(hub))[0] == ["bob", "bodil"]
    with pytest.raises(HTTPClientError) as e:
        await Directory(clock).load(hub)
    assert e.value.code == 503


async def test_notebook_size_limit_comes_from_the_config(service, people, data_dir):
    svc = await service(platform_with(sharing={"max_notebook_bytes": "2Ki"}))
    call = Caller(svc)
    big = notebook(new_code_cell("x" * 4000))
    body = {"path": "a.ipynb", "notebook": big, "users": ["bob"]}
    code, answer, _ = await call("POST", SHARES, people["alice"], body)
    assert code == 413 and "2,048 bytes" in answer["error"]
    code, answer, _ = await call("POST", SHARES, people["alice"], {**body, "notebook": notebook()})
    assert code == 201


async def test_every_share_route_needs_a_hub_user(svc, people):
    sid = "a" * 16
    for method, path in (
        ("GET", SHARES), ("POST", SHARES), ("GET", RECEIVED), ("GET", AUDIT),
        ("GET", "/api/shares/recipients"),
        ("GET", f"/api/shares/{sid}"), ("PATCH", f"/api/shares/{sid}"),
        ("DELETE", f"/api/shares/{sid}"), ("POST", f"/api/shares/{sid}/copy"),
    ):  # fmt: skip
        code, answer, _ = await svc.call(method, path, body={} if method != "GET" else None)
        assert code == 403 and "token" in answer["error"], (method, path)
        code, _, _ = await svc.call(method, path, token="forged")
        assert code == 403
    for path in (f"/shares/{sid}", f"/shares/{sid}/preview"):  # pages send a browser to log in
        code, _, headers = await svc.call("GET", path)
        assert code == 302 and "/hub/api/oauth2/authorize" in headers["Location"]


async def test_cookie_writes_need_the_xsrf_token(svc, people):
    """A browser's cookie alone reads, never writes: a page elsewhere (or a script inside a
    preview) cannot share, change or revoke with it."""
    secret = b"s" * 32
    hub_auth = HubOAuth(
        api_url=svc.accountant.hub.url, api_token="service-token", base_url=PREFIX,
        hub_prefix="/hub/", oauth_client_id="service-mlfactory", cache_max_age=0,
        access_scopes={"access:services!service=mlfactory"},
    )  # fmt: skip
    port = free_port()
    server = HTTPServer(make_app(svc.accountant, hub_auth, prefix=PREFIX, cookie_secret=secret))
    server.listen(port, "127.0.0.1")
    try:
        cookie = create_signed_value(secret, hub_auth.cookie_name, people["alice"]).decode()
        base = f"http://127.0.0.1:{port}{PREFIX}api/shares"
        headers = {"Cookie": f"{hub_auth.cookie_name}={cookie}", "Sec-Fetch-Mode": "cors"}
        body = json.dumps({"path": "a.ipynb", "notebook": notebook(), "users": ["bob"]})
        resp = await AsyncHTTPClient().fetch(
            HTTPRequest(base, method="POST", headers=headers, body=body), raise_error=False
        )
        assert resp.code == 403, resp.body
        resp = await AsyncHTTPClient().fetch(
            HTTPRequest(base, headers={"Cookie": headers["Cookie"]}), raise_error=False
        )
        assert resp.code == 200 and json.loads(resp.body) == {"shares": []}
    finally:
        server.stop()


async def test_a_preview_nbconvert_cannot_render_says_so(svc, people, monkeypatch):
    def broken(text: str, name: str) -> str:
        raise RuntimeError("nbconvert blew up at /srv/secret/path")

    monkeypatch.setattr(previews, "render", broken)
    body = {"path": "a.ipynb", "notebook": notebook(), "users": ["bob"]}
    code, answer, _ = await svc.call("POST", SHARES, token=people["alice"], body=body)
    code, answer, headers = await svc.call(
        "GET", f"/shares/{answer['share']['id']}/preview", token=people["bob"]
    )
    assert code == 422 and "open a copy instead" in answer["error"]
    assert "secret" not in json.dumps(answer) and headers["Content-Type"] == "application/json"


def test_previews_load_nothing_from_elsewhere():
    """nbconvert's page would load require.js and MathJax from a CDN: failed loads offline,
    and a third party told of every preview online."""
    page = previews.render(json.dumps(notebook(new_markdown_cell("# Q4 $x^2$"))), "a.ipynb")
    assert "Q4" in page
    assert not re.findall(r'<script[^>]+src="https?:', page)


def test_a_reused_exporter_renders_each_notebook_as_a_fresh_one_would():
    """Each worker thread keeps its exporter (building one compiles the templates): what one
    notebook set (its title, its code lexer, its widget state) must not reach the next."""
    import concurrent.futures

    first = notebook(
        new_code_cell("library(ggplot2)"),
        language_info={"name": "R", "pygments_lexer": "r"},
        widgets={"application/vnd.jupyter.widget-state+json": {"state": {}, "version_major": 2}},
    )
    second = json.dumps(notebook(new_code_cell("import numpy as np")))
    with concurrent.futures.ThreadPoolExecutor(1) as one_thread:
        one_thread.submit(previews.render, json.dumps(first), "first.ipynb").result()
        reused = one_thread.submit(previews.render, second, "second.ipynb").result()
    with concurrent.futures.ThreadPoolExecutor(1) as new_thread:
        fresh = new_thread.submit(previews.render, second, "second.ipynb").result()
    assert reused == fresh
    assert "ggplot2" not in reused
