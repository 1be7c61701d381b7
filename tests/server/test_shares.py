"""Sharing notebooks from a notebook server, against the real platform service app
(in-process, with the stand-in hub of ``tests/fakehub.py``): sharing a file under the root,
the lists, updating and revoking, and opening a copy that never overwrites; and the copy
rules of ``server_ext/share_copy.py`` directly."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import nbformat
import pytest
from mlfactory.server import shares
from mlfactory.server.share_copy import (
    PathError,
    check_notebook_path,
    check_relative,
    copy_names,
    with_copied_from,
)
from nbformat.v4 import new_code_cell, new_notebook
from tornado.httpclient import HTTPClientError

from .conftest import CALLER

TOKEN = "hub-api-token"  # what conftest's hub fixtures put in JUPYTERHUB_API_TOKEN
BASE = ("mlfactory", "shares")


# --- the rules ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    ["../x.ipynb", "/etc/x.ipynb", "a/../../x.ipynb", "a\\x.ipynb", "%2e%2e/x.ipynb",
     "c:x.ipynb", "a//x.ipynb", ".hidden/x.ipynb", "x.py", "", None, 5],
)  # fmt: skip
def test_notebook_paths_stay_under_the_root(bad):
    with pytest.raises(PathError) as e:
        check_notebook_path(bad, allow_hidden=False)
    assert e.value.status == 400


def test_paths_that_are_fine():
    assert (
        check_notebook_path("work/q4 (final).ipynb", allow_hidden=False) == "work/q4 (final).ipynb"
    )
    assert check_notebook_path(".hidden/x.ipynb", allow_hidden=True) == ".hidden/x.ipynb"
    assert check_relative(None, what="folder", allow_hidden=False, empty_ok=True) == ""
    assert check_relative("", what="folder", allow_hidden=False, empty_ok=True) == ""
    assert check_relative("in/", what="folder", allow_hidden=False, empty_ok=True) == "in"


def test_copy_names_never_repeat_and_carry_no_path():
    names = copy_names("q4.ipynb", "bob")
    assert names[:3] == [
        "q4 (shared by bob).ipynb",
        "q4 (shared by bob) 2.ipynb",
        "q4 (shared by bob) 3.ipynb",
    ]
    assert len(set(names)) == len(names)
    (first, *_) = copy_names("../x<y>.ipynb", "a/b\\c")
    assert "/" not in first and "\\" not in first and "<" not in first
    assert first == "x_y_ (shared by a_b_c).ipynb"
    assert copy_names(".env.ipynb", ".x")[0] == "env (shared by x).ipynb"  # never hidden


def test_copied_from_metadata_keeps_the_rest():
    nb = {"metadata": {"kernelspec": {"name": "python3"}, "mlfactory": {"x": 1}}, "cells": []}
    out = with_copied_from(
        nb, share_id="a" * 16, owner="bob", version=2, path="w/q4.ipynb", at="2026-11-10T12:00:00Z"
    )
    assert out["metadata"]["mlfactory"] == {
        "x": 1,
        "copied_from": {
            "share_id": "a" * 16, "owner": "bob", "version": 2, "path": "w/q4.ipynb",
            "at": "2026-11-10T12:00:00Z",
        },
    }  # fmt: skip
    assert out["metadata"]["kernelspec"] == {"name": "python3"}
    assert "copied_from" not in nb["metadata"]["mlfactory"]  # the input is left alone


# --- through the server and the service ----------------------------------------------------


@pytest.fixture
async def svc(service, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFACTORY_DATA", str(tmp_path / "data"))
    return await service()


@pytest.fixture
def configured(monkeypatch, svc, hub_server_of_caller, hub_state):
    """The hub spawned this server for alice and pointed it at the platform service."""
    monkeypatch.setenv(shares.service_client.SERVICE_URL_ENV, svc.url)
    hub_state.add_user(CALLER, token=TOKEN, groups=("ds",))
    hub_state.add_user("bob", token="token-bob")
    return svc


def write_notebook(path: Path, *sources: str) -> dict[str, Any]:
    nb = new_notebook(cells=[new_code_cell(s) for s in sources or ("1 + 1",)])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(nbformat.writes(nb), encoding="utf-8")
    return json.loads(nbformat.writes(nb))


async def fetch(
    jp_fetch, *parts: str, method: str = "GET", body: Any = None, params: Any = None
) -> tuple[int, Any]:
    kw: dict[str, Any] = {"method": method}
    if params is not None:
        kw["params"] = params
    if body is not None:
        kw["body"] = json.dumps(body)
    elif method in ("POST", "PATCH"):
        kw["body"] = "{}"
    try:
        r = await jp_fetch(*parts, **kw)
    except HTTPClientError as e:
        text = e.response.body.decode()
        assert "Traceback" not in text
        return e.code, json.loads(text)
    return r.code, json.loads(r.body)


async def test_share_list_update_and_revoke(configured, jp_root_dir, jp_fetch):
    svc = configured
    nb = write_notebook(jp_root_dir / "work" / "q4.ipynb", "x = 1")
    code, body = await fetch(
        jp_fetch, *BASE, method="POST",
        body={"path": "work/q4.ipynb", "users": ["bob"], "mode": "copy", "message": "see",
              "notebook": {"nbformat": 4, "cells": []}, "owner": "bob"},
    )  # fmt: skip
    assert code == 201, body
    share = body["share"]
    assert (share["owner"], share["users"], share["path"], share["version"]) == (
        CALLER, ["bob"], "work/q4.ipynb", 1
    )  # fmt: skip
    # what was shared is the file, not anything the browser sent
    code, copied, _ = await svc.call("POST", f"/api/shares/{share['id']}/copy", token="token-bob")
    assert code == 200 and copied["notebook"] == nb

    code, body = await fetch(jp_fetch, *BASE)
    assert [s["id"] for s in body["shares"]] == [share["id"]]
    code, body = await fetch(jp_fetch, *BASE, "received")
    assert code == 200 and body["shares"] == []

    newer = write_notebook(jp_root_dir / "work" / "q4.ipynb", "x = 2")
    code, body = await fetch(
        jp_fetch, *BASE, share["id"], method="PATCH", body={"snapshot": True, "message": "v2"}
    )
    assert code == 200 and (body["share"]["version"], body["share"]["message"]) == (2, "v2")
    code, copied, _ = await svc.call("POST", f"/api/shares/{share['id']}/copy", token="token-bob")
    assert copied["notebook"] == newer

    code, body = await fetch(jp_fetch, *BASE, share["id"], method="DELETE")
    assert code == 200 and body["share"]["status"] == "revoked"
    code, _, _ = await svc.call("POST", f"/api/shares/{share['id']}/copy", token="token-bob")
    assert code == 404


async def test_what_cannot_be_shared(configured, jp_root_dir, jp_fetch, tmp_path, monkeypatch):
    write_notebook(jp_root_dir / "ok.ipynb")
    outside = tmp_path / f"{jp_root_dir.name}-evil"
    write_notebook(outside / "secret.ipynb")
    (jp_root_dir / "link.ipynb").symlink_to(outside / "secret.ipynb")
    (jp_root_dir / "sib").symlink_to(outside)
    (jp_root_dir / "text.ipynb").write_text("not json")
    os.mkfifo(jp_root_dir / "pipe.ipynb")
    for path, code_, says in (
        ("../ok.ipynb", 400, ".."),
        ("link.ipynb", 403, "outside"),
        ("sib/secret.ipynb", 403, "outside"),
        ("missing.ipynb", 404, "missing.ipynb"),
        ("text.ipynb", 400, "not JSON"),
        ("pipe.ipynb", 400, "regular file"),
        ("ok.txt", 400, ".ipynb"),
    ):
        code, body = await fetch(
            jp_fetch, *BASE, method="POST", body={"path": path, "users": ["bob"]}
        )
        assert code == code_ and says in body["message"], (path, body)
    # the service's own errors come through with their words
    code, body = await fetch(
        jp_fetch, *BASE, method="POST", body={"path": "ok.ipynb", "users": ["nobody"]}
    )
    assert code == 404 and "'nobody'" in body["message"]
    monkeypatch.setattr(shares, "MAX_READ_BYTES", 10)
    code, body = await fetch(
        jp_fetch, *BASE, method="POST", body={"path": "ok.ipynb", "users": ["bob"]}
    )
    assert code == 413 and "10 bytes" in body["message"]


async def test_open_a_copy_never_overwrites(configured, jp_root_dir, jp_fetch, monkeypatch):
    svc = configured
    nb = json.loads(nbformat.writes(new_notebook(cells=[new_code_cell("print('from bob')")])))
    code, body, _ = await svc.call(
        "POST", "/api/shares", token="token-bob",
        body={"path": "lab/q4.ipynb", "notebook": nb, "users": [CALLER], "mode": "copy"},
    )  # fmt: skip
    assert code == 201, body
    sid = body["share"]["id"]
    mine = jp_root_dir / "q4 (shared by bob).ipynb"
    mine.write_text("my own file")
    monkeypatch.setattr(shares, "now", lambda: shares.datetime(2026, 11, 10, 12, tzinfo=shares.UTC))

    code, body = await fetch(jp_fetch, *BASE, "received")
    assert [s["id"] for s in body["shares"]] == [sid]
    code, body = await fetch(jp_fetch, *BASE, sid, "open", method="POST")
    assert code == 201, body
    assert body["path"] == "q4 (shared by bob) 2.ipynb" and body["version"] == 1
    assert mine.read_text() == "my own file"
    copy = json.loads((jp_root_dir / body["path"]).read_text())
    assert copy["cells"] == nb["cells"]
    assert copy["metadata"]["mlfactory"]["copied_from"] == {
        "share_id": sid, "owner": "bob", "version": 1, "path": "lab/q4.ipynb",
        "at": "2026-11-10T12:00:00Z",
    }  # fmt: skip
    nbformat.validate(nbformat.reads(json.dumps(copy), as_version=4))

    (jp_root_dir / "in").mkdir()
    code, body = await fetch(jp_fetch, "mlfactory", "history", "init", method="POST")
    assert code == 200, body
    code, body = await fetch(jp_fetch, *BASE, sid, "open", method="POST", body={"folder": "in"})
    assert code == 201 and body["path"] == "in/q4 (shared by bob).ipynb"
    # with the history on, the copy's first version says where it came from
    code, listed = await fetch(jp_fetch, "mlfactory", "history", "versions",
                               params={"path": body["path"]})  # fmt: skip
    assert [v["message"] for v in listed["versions"]] == [
        "Copy of “q4.ipynb” shared by bob (version 1)"
    ]
    code, body = await fetch(jp_fetch, *BASE, sid, "open", method="POST", body={"folder": "../x"})
    assert code == 400
    code, body = await fetch(jp_fetch, *BASE, "f" * 16, "open", method="POST")
    assert code == 404

    # a view share gives no copy; the owner's words come through
    code, body, _ = await svc.call(
        "POST", "/api/shares", token="token-bob",
        body={"path": "v.ipynb", "notebook": nb, "users": [CALLER], "mode": "view"},
    )  # fmt: skip
    code, body = await fetch(jp_fetch, *BASE, body["share"]["id"], "open", method="POST")
    assert code == 403 and "view only" in body["message"]


async def test_recipients_are_searched_at_the_service(configured, jp_fetch, hub_state):
    hub_state.add_user("bobby", groups=("ml",))
    code, body = await fetch(jp_fetch, *BASE, "recipients", params={"q": "bo"})
    assert code == 200, body
    assert (body["users"], body["groups"]) == (["bob", "bobby"], [])
    code, body = await fetch(jp_fetch, *BASE, "recipients", params={"q": "", "limit": "1"})
    assert (body["users"], body["groups"], body["truncated"]) == (["bob"], ["ds"], True)
    assert CALLER not in body["users"]
    code, body = await fetch(jp_fetch, *BASE, "recipients", params={"limit": "0"})
    assert code == 400 and "limit" in body["message"]


async def test_only_the_owner_shares(
    hub_server_shared_with_caller, monkeypatch, svc, jp_root_dir, jp_fetch
):
    monkeypatch.setenv(shares.service_client.SERVICE_URL_ENV, svc.url)
    write_notebook(jp_root_dir / "ok.ipynb")
    sid = "a" * 16
    for parts, method in (
        (BASE, "GET"), (BASE, "POST"), ((*BASE, "received"), "GET"), ((*BASE, sid), "GET"),
        ((*BASE, "recipients"), "GET"),
        ((*BASE, sid), "PATCH"), ((*BASE, sid), "DELETE"), ((*BASE, sid, "open"), "POST"),
    ):  # fmt: skip
        code, body = await fetch(jp_fetch, *parts, method=method)
        assert code == 403 and "Only the owner" in body["message"], (parts, method)


async def test_without_the_service_it_says_so(hub_server_of_caller, jp_root_dir, jp_fetch):
    write_notebook(jp_root_dir / "ok.ipynb")
    code, body = await fetch(jp_fetch, *BASE, method="POST", body={"path": "ok.ipynb"})
    assert code == 503 and "not available here" in body["message"]
