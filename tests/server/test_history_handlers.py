"""The notebook-history REST API in a running jupyter server: every route, refusals of
traversal and injection, XSRF on state changes, owner-only remote actions."""

from __future__ import annotations

import json
import os
import subprocess
from http.cookies import SimpleCookie
from pathlib import Path
from urllib.parse import urlencode

import nbformat
import pytest
from jupyter_server.auth import User
from jupyter_server.auth.identity import PasswordIdentityProvider
from jupyter_server.utils import url_path_join
from tornado.httpclient import HTTPClientError

from .conftest import CALLER

TOKEN = "tok-never-shown"


@pytest.fixture
def jp_server_config(jp_server_config, tmp_path):
    jp_server_config["NotebookHistory"] = {
        "credentials_dir": str(tmp_path / "credentials"),
        "allow_local_remotes": True,
        "author_name": "Ada",
        "author_email": "ada@example.org",
    }
    return jp_server_config


@pytest.fixture
async def history_api(jp_fetch):
    async def call(route, method="GET", body=None, **params):
        kwargs = {"method": method, "params": params or None}
        if body is not None:
            kwargs["body"] = json.dumps(body)
        elif method in ("POST", "PUT"):
            kwargs["body"] = "{}"
        response = await jp_fetch("mlfactory", "history", route, **kwargs)
        return response.code, json.loads(response.body)

    yield call
    from mlfactory.server.history.diffing import WORKERS

    await WORKERS.close()


async def refused(call, *args, **kwargs):
    with pytest.raises(HTTPClientError) as e:
        await call(*args, **kwargs)
    body = e.value.response.body.decode()
    assert "Traceback" not in body and TOKEN not in body
    return e.value.code, json.loads(body)


def notebook(root: Path, name: str, sources: list[str]) -> Path:
    path = root / name
    path.parent.mkdir(parents=True, exist_ok=True)
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(s) for s in sources])
    nbformat.write(nb, path)
    return path


def edit(path: Path, source: str, index: int = 0) -> None:
    nb = nbformat.read(path, as_version=4)
    nb.cells[index].source = source
    nbformat.write(nb, path)


async def test_status_init_and_get_changes_nothing(history_api, jp_root_dir):
    code, status = await history_api("status")
    assert code == 200
    assert status == {
        "repository": False,
        "branch": None,
        "remote": None,
        "pairing": "py:percent",
        "autosave_minutes": 0.0,
        "jupyterlab_git": status["jupyterlab_git"],
        "author": {"name": "Ada", "email": "ada@example.org"},
    }
    notebook(jp_root_dir, "a.ipynb", ["1"])
    await history_api("versions", path="a.ipynb")
    await history_api("settings")
    assert not (jp_root_dir / ".git").exists()  # GET never changes state
    code, status = await history_api("init", "POST")
    assert code == 200 and status["repository"] is True and status["branch"] == "main"
    assert (await history_api("init", "POST"))[1] == status


async def test_versions_save_list_diff_restore(history_api, jp_root_dir):
    path = notebook(jp_root_dir, "sub/a.ipynb", ["x = 1"])
    code, listed = await history_api("versions", path="sub/a.ipynb")
    assert (code, listed) == (200, {"path": "sub/a.ipynb", "versions": [], "dirty": True})
    code, created = await history_api("versions", "POST", {"path": "sub/a.ipynb", "message": "one"})
    assert code == 201
    one = created["version"]
    assert set(one) == {"id", "short", "time", "author", "name", "email", "message", "automatic"}
    assert one["message"] == "one" and one["author"] == "Ada" and one["automatic"] is False
    assert one["name"] == "Ada"
    code, body = await refused(
        history_api, "versions", "POST", {"path": "sub/a.ipynb", "message": "again"}
    )
    assert code == 409 and "“one”" in body["message"] and one["short"] not in body["message"]
    edit(path, "x = 2")
    code, diff = await history_api("diff", path="sub/a.ipynb")
    assert code == 200 and (diff["from"], diff["to"]) == (one["id"], "working")
    assert diff["path"] == "sub/a.ipynb"
    assert diff["base"]["cells"][0]["source"] == "x = 1"
    assert diff["diff"][0]["key"] == "cells"
    two = (await history_api("versions", "POST", {"path": "sub/a.ipynb", "message": "two"}))[1]
    between = (
        await history_api(
            "diff", path="sub/a.ipynb", **{"from": one["id"], "to": two["version"]["id"]}
        )
    )[1]
    assert between["diff"] == diff["diff"]
    code, restored = await history_api(
        "restore", "POST", {"path": "sub/a.ipynb", "version": one["id"]}
    )
    # the message says what came back and when, in words: no hash, no ISO time
    message = restored["version"]["message"]
    assert code == 201 and message.startswith("Restored “one” from ")
    assert one["short"] not in message and one["time"] not in message
    assert nbformat.read(path, as_version=4).cells[0].source == "x = 1"
    listed = (await history_api("versions", path="sub/a.ipynb", limit="2"))[1]
    assert [v["id"] for v in listed["versions"]] == [
        restored["version"]["id"],
        two["version"]["id"],
    ]
    assert listed["dirty"] is False
    assert (jp_root_dir / "sub" / "a.py").is_file()


async def test_missing_notebook_and_bad_queries(history_api, jp_root_dir):
    assert (await refused(history_api, "versions", path="nope.ipynb"))[0] == 404
    notebook(jp_root_dir, "a.ipynb", ["1"])
    for limit in ("0", "-1", "abc", "100000"):
        assert (await refused(history_api, "versions", path="a.ipynb", limit=limit))[0] == 400
    assert (await refused(history_api, "diff", path="a.ipynb"))[0] == 404  # no versions yet
    await history_api("versions", "POST", {"path": "a.ipynb", "message": "one"})
    for bad in ("--output=/tmp/x", "HEAD", "-p", "main"):
        assert (await refused(history_api, "diff", path="a.ipynb", **{"from": bad}))[0] == 400
        assert (await refused(history_api, "diff", path="a.ipynb", to=bad))[0] == 400
    assert (await refused(history_api, "diff", path="a.ipynb", **{"from": "abcdef12"}))[0] == 404
    for body in ({"path": "a.ipynb", "message": "a\x00b"}, {"path": "a.ipynb"}, {"path": 3}):
        assert (await refused(history_api, "versions", "POST", body))[0] == 400


@pytest.fixture
def sibling(jp_root_dir):
    """A folder next to the workspace whose name extends the workspace's."""
    evil = jp_root_dir.parent / (jp_root_dir.name + "-evil")
    evil.mkdir()
    notebook(evil, "x.ipynb", ["secret"])
    os.symlink(evil, jp_root_dir / "link")
    os.symlink(evil / "x.ipynb", jp_root_dir / "x.ipynb")
    return evil


@pytest.mark.parametrize(
    "path",
    [
        "../{evil}/x.ipynb",
        "/{abs_evil}/x.ipynb",
        "link/x.ipynb",
        "x.ipynb",
        "a%2F..%2F..%2Fx.ipynb",
        "a%5Cx.ipynb",
        "sub/../../x.ipynb",
        "--upload-pack=touch.ipynb",
        "-x.ipynb",
        ".git/config",
        "a.py",
    ],
)
async def test_paths_are_confined(history_api, jp_root_dir, sibling, path):
    path = path.format(evil=sibling.name, root=jp_root_dir.name, abs_evil=str(sibling).lstrip("/"))
    for call in (
        lambda: history_api("versions", path=path),
        lambda: history_api("diff", path=path),
        lambda: history_api("versions", "POST", {"path": path, "message": "m"}),
        lambda: history_api("restore", "POST", {"path": path, "version": "abcd"}),
    ):
        code, body = await refused(call)
        assert code == 400, (path, body)
    assert not (sibling / ".git").exists()


async def test_settings(history_api, jp_root_dir):
    assert (await history_api("settings"))[1] == {"pairing": "py:percent", "autosave_minutes": 0}
    code, saved = await history_api("settings", "PUT", {"pairing": "md", "autosave_minutes": 15})
    assert (code, saved) == (200, {"pairing": "md", "autosave_minutes": 15.0})
    assert (await history_api("status"))[1]["pairing"] == "md"
    for bad in ({"pairing": "sh"}, {"autosave_minutes": -5}, {"other": 1}):
        assert (await refused(history_api, "settings", "PUT", bad))[0] == 400
    assert json.loads((jp_root_dir / ".mlfactory/history.json").read_text())["pairing"] == "md"


async def test_automatic_versions_through_the_contents_api(
    history_api, jp_fetch, jp_serverapp, jp_root_dir
):
    from mlfactory.server.history.extension import SETTINGS_KEY

    notebook(jp_root_dir, "a.ipynb", ["1"])
    await history_api("settings", "PUT", {"autosave_minutes": 5})
    await history_api("init", "POST")
    model = json.loads((await jp_fetch("api", "contents", "a.ipynb")).body)
    model["content"]["cells"][0]["source"] = "2"
    saved = await jp_fetch(
        "api", "contents", "a.ipynb", method="PUT",
        body=json.dumps({"type": "notebook", "content": model["content"]}),
    )  # fmt: skip
    assert saved.code == 200
    # the save answered first; the version is made by a task after it
    await jp_serverapp.web_app.settings[SETTINGS_KEY].drain()
    listed = (await history_api("versions", path="a.ipynb"))[1]["versions"]
    assert [(v["message"], v["automatic"]) for v in listed] == [("Automatic version", True)]


async def test_remote_push_pull_owner_only(
    hub_server_shared_with_caller, history_api, jp_root_dir, tmp_path
):
    for route, method, body in [
        ("remote", "PUT", {"url": "https://x.example.org/p.git", "username": "a", "token": TOKEN}),
        ("remote", "DELETE", None),
        ("push", "POST", None),
        ("pull", "POST", None),
    ]:
        code, reply = await refused(history_api, route, method, body)
        assert code == 403 and "owner" in reply["message"], route
    assert not (tmp_path / "credentials").exists()


async def test_remote_credentials_never_answered(hub_server_of_caller, history_api, jp_root_dir):
    code, status = await history_api(
        "remote", "PUT", {"url": "https://git.example.org/p.git", "username": "ada", "token": TOKEN}
    )
    assert code == 200 and TOKEN not in json.dumps(status)
    assert status["remote"] == {"url": "https://git.example.org/p.git", "has_credentials": True}
    assert TOKEN not in (jp_root_dir / ".git" / "config").read_text()
    for url in ("ext::sh -c touch% /tmp/pwned", "--upload-pack=touch /tmp/x", "-u", "fd::3"):
        code, reply = await refused(
            history_api, "remote", "PUT", {"url": url, "username": "a", "token": "b"}
        )
        assert code == 400 and TOKEN not in reply["message"]
    code, status = await history_api("remote", "DELETE")
    assert status["remote"]["has_credentials"] is False


def _git(cwd, *args):
    return subprocess.run(
        ["git", *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout


async def test_push_and_pull_with_conflicts(history_api, jp_root_dir, tmp_path):
    bare = tmp_path / "remote.git"
    _git(tmp_path, "init", "-q", "--bare", "--initial-branch=main", str(bare))
    path = notebook(jp_root_dir, "a.ipynb", [f"c{i} = {i}" for i in range(6)])
    await history_api("versions", "POST", {"path": "a.ipynb", "message": "one"})
    assert (await history_api("remote", "PUT", {"url": str(bare)}))[1]["remote"]["url"] == str(bare)
    assert (await history_api("push", "POST"))[1] == {"pushed": True, "branch": "main"}
    assert (await history_api("pull", "POST"))[1] == {
        "updated": False, "merged_notebooks": [], "conflicts": [],
    }  # fmt: skip
    # someone else changes the same cell and pushes
    clone = tmp_path / "clone"
    _git(tmp_path, "clone", "-q", str(bare), str(clone))
    edit(clone / "a.ipynb", "c0 = 'theirs'")
    _git(clone, "-c", "user.name=b", "-c", "user.email=b@b", "commit", "-qam", "theirs")
    _git(clone, "push", "-q", "origin", "main")
    edit(path, "c0 = 'mine'")
    await history_api("versions", "POST", {"path": "a.ipynb", "message": "mine"})
    before = path.read_bytes()
    code, reply = await refused(history_api, "pull", "POST")
    assert code == 409 and "a.ipynb" in reply["conflicts"] and "a.ipynb" in reply["message"]
    assert path.read_bytes() == before


async def _login_cookies(http_server_client, base_url, token):
    """A browser's session: the _xsrf cookie from the login page, then the login cookie."""
    page = await http_server_client.fetch(url_path_join(base_url, "login"), raise_error=False)
    cookies = SimpleCookie()
    for header in page.headers.get_list("Set-Cookie"):
        cookies.load(header)
    xsrf = cookies["_xsrf"].value
    response = await http_server_client.fetch(
        url_path_join(base_url, "login"),
        method="POST",
        body=urlencode({"_xsrf": xsrf, "password": token}),
        headers={"Cookie": f"_xsrf={xsrf}"},
        follow_redirects=False,
        raise_error=False,
    )
    for header in response.headers.get_list("Set-Cookie"):
        cookies.load(header)
    return xsrf, "; ".join(f"{k}={v.value}" for k, v in cookies.items())


class BrowserIdentityProvider(PasswordIdentityProvider):
    """jupyter_server's default provider (it has the token login form), naming callers alice."""

    def generate_anonymous_user(self, handler):
        return User(username=CALLER)


@pytest.fixture
def browser_login(jp_server_config):
    jp_server_config["ServerApp"]["identity_provider_class"] = BrowserIdentityProvider


async def test_state_changes_need_the_xsrf_token(
    browser_login, jp_serverapp, http_server_client, jp_base_url, jp_root_dir
):
    xsrf, cookie = await _login_cookies(
        http_server_client, jp_base_url, jp_serverapp.identity_provider.token
    )
    url = url_path_join(jp_base_url, "mlfactory/history/init")
    response = await http_server_client.fetch(
        url, method="POST", body="{}", headers={"Cookie": cookie}, raise_error=False
    )
    assert response.code == 403 and not (jp_root_dir / ".git").exists()
    response = await http_server_client.fetch(
        url, method="POST", body="{}", headers={"Cookie": cookie, "X-XSRFToken": xsrf},
        raise_error=False,
    )  # fmt: skip
    assert response.code == 200, (cookie, response.body)
    assert (jp_root_dir / ".git").exists()
    # GET needs no XSRF token
    response = await http_server_client.fetch(
        url_path_join(jp_base_url, "mlfactory/history/status"), headers={"Cookie": cookie}
    )
    assert response.code == 200


async def test_slow_diff_is_504(history_api, jp_serverapp, jp_root_dir):
    from mlfactory.server.history.extension import SETTINGS_KEY

    path = notebook(jp_root_dir, "a.ipynb", ["1"])
    await history_api("versions", "POST", {"path": "a.ipynb", "message": "one"})
    edit(path, "2")
    jp_serverapp.web_app.settings[SETTINGS_KEY].diff_timeout = 0.001
    code, body = await refused(history_api, "diff", path="a.ipynb")
    assert code == 504 and "longer than" in body["message"]


@pytest.fixture
def with_jupytext(jp_server_config):
    """jupytext's server extension, as installed beside mlfactory: it wraps the contents
    manager before mlfactory loads (extensions load in name order)."""
    jp_server_config["ServerApp"]["jpserver_extensions"]["jupyterlab_jupytext"] = True


async def test_composes_with_jupytext_s_contents_manager(
    with_jupytext, history_api, jp_fetch, jp_serverapp, jp_root_dir, tmp_path
):
    cm = jp_serverapp.contents_manager
    assert hasattr(cm, "formats") and getattr(cm.load_config_file, "_mlfactory_guard", False)
    marker = tmp_path / "config-ran"
    (jp_root_dir / "jupytext.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    (jp_root_dir / ".jupytext.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    cm.allow_hidden = True
    notebook(jp_root_dir, "a.ipynb", ["x = 1"])
    model = json.loads((await jp_fetch("api", "contents", "a.ipynb")).body)
    await jp_fetch(
        "api", "contents", "a.ipynb", method="PUT",
        body=json.dumps({"type": "notebook", "content": model["content"]}),
    )  # fmt: skip
    assert "x = 1" in (jp_root_dir / "a.py").read_text()  # jupytext paired it
    assert not marker.exists()
    code, body = await refused(
        history_api, "versions", "POST", {"path": "a.ipynb", "message": "one"}
    )
    assert code == 409 and "jupytext.py" in body["message"]
    (jp_root_dir / "jupytext.py").unlink()
    (jp_root_dir / ".jupytext.py").unlink()
    code, created = await history_api("versions", "POST", {"path": "a.ipynb", "message": "one"})
    assert code == 201
    old = created["version"]["id"]
    edit(jp_root_dir / "a.ipynb", "x = 2")
    await history_api("versions", "POST", {"path": "a.ipynb", "message": "two"})
    await history_api("restore", "POST", {"path": "a.ipynb", "version": old})
    assert "x = 1" in (jp_root_dir / "a.py").read_text()
    assert not marker.exists()


async def test_git_timeout_is_504(history_api, jp_serverapp, jp_root_dir, tmp_path):
    from mlfactory.server.history.extension import SETTINGS_KEY

    slow = tmp_path / "slow-git"
    slow.write_text("#!/bin/sh\nexec sleep 30\n")
    slow.chmod(0o755)
    runner = jp_serverapp.web_app.settings[SETTINGS_KEY].runner
    runner.git, runner.timeout = str(slow), 0.2
    code, body = await refused(history_api, "init", "POST")
    assert code == 504 and "in time" in body["message"]
