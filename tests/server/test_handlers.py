"""The REST handlers in a running jupyter server: /info, /health, errors, owner checks."""

from __future__ import annotations

import getpass
import json
import os
from importlib.metadata import version

import pytest
from jupyter_server.auth.decorator import authorized
from jupyter_server.utils import url_path_join
from mlfactory.server import handlers
from mlfactory.server.handlers import UNEXPECTED_ERROR, MLFactoryAPIHandler
from tornado import web
from tornado.httpclient import HTTPClientError

from .conftest import CALLER

PROFILE = {"name": "gpu-a100", "cpu": 8, "mem_gb": 64, "gpus": 1}


async def _json_error(fetch, *parts, **kwargs):
    with pytest.raises(HTTPClientError) as e:
        await fetch(*parts, **kwargs)
    body = e.value.response.body.decode()
    assert e.value.response.headers["Content-Type"].startswith("application/json")
    assert "Traceback" not in body and "traceback" not in body
    return e.value.code, json.loads(body), e.value.response


@pytest.fixture
def profile_env(monkeypatch):
    monkeypatch.setenv("MLFACTORY_PROFILE", json.dumps(PROFILE))


async def test_info_on_own_hub_server(profile_env, hub_server_of_caller, jp_fetch, jp_serverapp):
    r = await jp_fetch("mlfactory", "api", "info")
    assert r.code == 200
    info = json.loads(r.body)
    limits = info.pop("limits")
    # the panel's uptime counts from jupyter-server's own start time
    started = jp_serverapp.web_app.settings["started"]
    assert info.pop("started") == started.isoformat().replace("+00:00", "Z")
    assert info == {
        "version": version("mlfactory"),
        "user": CALLER,
        "owner": CALLER,
        "is_owner": True,
        "profile": PROFILE,
    }
    # the server reports what the kernel enforces on it (this test process)
    assert limits["cpus"] == sorted(os.sched_getaffinity(0))


async def test_info_on_shared_server(hub_server_shared_with_caller, jp_fetch):
    info = json.loads((await jp_fetch("mlfactory", "api", "info")).body)
    assert (info["user"], info["owner"], info["is_owner"]) == (CALLER, "bob", False)
    assert info["profile"] is None


async def test_info_standalone(jp_fetch):
    info = json.loads((await jp_fetch("mlfactory", "api", "info")).body)
    assert (info["owner"], info["is_owner"]) == (getpass.getuser(), True)


async def test_health(jp_fetch, jp_serverapp):
    before = jp_serverapp.web_app.settings.get("api_last_activity")
    r = await jp_fetch("mlfactory", "api", "health")
    assert json.loads(r.body) == {"status": "ok"}
    # probes must not count as user activity for idle culling
    assert jp_serverapp.web_app.settings.get("api_last_activity") == before


@pytest.mark.parametrize("route", ["info", "health"])
@pytest.mark.parametrize("method", ["POST", "PUT", "PATCH", "DELETE"])
async def test_other_verbs_are_405_json(jp_fetch, route, method):
    body = None if method == "DELETE" else "{}"
    code, reply, response = await _json_error(
        jp_fetch,
        "mlfactory",
        "api",
        route,
        method=method,
        body=body,
        allow_nonstandard_methods=True,
    )
    assert code == 405
    assert reply["message"] == f"{method} is not supported here; use GET, OPTIONS."
    assert response.headers["Allow"] == "GET, OPTIONS"


@pytest.fixture
def info_crashes(monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("secret internals /etc/shadow")

    monkeypatch.setattr(handlers, "is_owner", boom)


@pytest.fixture
def jp_server_config(jp_server_config):
    # tornado's own error pages would put the traceback in the body with this on
    jp_server_config["ServerApp"]["tornado_settings"] = {"serve_traceback": True}
    return jp_server_config


async def test_unexpected_error_is_json_without_traceback(info_crashes, jp_fetch):
    code, reply, _ = await _json_error(jp_fetch, "mlfactory", "api", "info")
    assert code == 500
    assert reply == {"message": UNEXPECTED_ERROR}


class OwnerOnlyHandler(MLFactoryAPIHandler):
    """Test-only stand-in for an owner-only action such as publishing a model."""

    auth_resource = "mlfactory:test-owner-only"

    @web.authenticated
    @authorized
    def post(self) -> None:
        self.require_owner()
        self.finish(json.dumps({"done": True}))


@pytest.fixture
def owner_only_route(jp_serverapp):
    pattern = url_path_join(jp_serverapp.base_url, "/mlfactory/api/test-owner-only")
    jp_serverapp.web_app.add_handlers(".*$", [(pattern, OwnerOnlyHandler)])
    return ("mlfactory", "api", "test-owner-only")


async def test_owner_passes_require_owner(hub_server_of_caller, owner_only_route, jp_fetch):
    r = await jp_fetch(*owner_only_route, method="POST", body="{}")
    assert json.loads(r.body) == {"done": True}


async def test_standalone_token_holder_passes_require_owner(owner_only_route, jp_fetch):
    r = await jp_fetch(*owner_only_route, method="POST", body="{}")
    assert r.code == 200


async def test_shared_user_gets_403_from_require_owner(
    hub_server_shared_with_caller, owner_only_route, jp_fetch
):
    code, reply, _ = await _json_error(jp_fetch, *owner_only_route, method="POST", body="{}")
    assert code == 403
    assert reply == {
        "message": "Only the owner of this server (bob) can do this; you are signed in as "
        f"{CALLER}. Ask the owner, or do it from your own server."
    }


@pytest.fixture
def hub_server_without_user(monkeypatch):
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "hub-api-token")


async def test_hub_server_without_user_refuses_everyone(
    hub_server_without_user, owner_only_route, jp_fetch
):
    code, reply, _ = await _json_error(jp_fetch, *owner_only_route, method="POST", body="{}")
    assert code == 403
    assert reply["message"].startswith("Only the owner of this server (unknown) can do this")


@pytest.mark.parametrize("route", ["info", "health"])
async def test_authorizer_is_consulted(deny_all, jp_fetch, route):
    code, reply, _ = await _json_error(jp_fetch, "mlfactory", "api", route)
    assert code == 403
    assert deny_all.asked == [("read", f"mlfactory:{route}")]
    assert reply["message"] == f"User is not authorized to read on resource: mlfactory:{route}."


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"{not json", "The request body is not valid JSON."),
        (b"[1, 2]", "The request body must be a JSON object."),
    ],
)
async def test_a_bad_json_body_is_a_400_naming_the_problem(jp_fetch, raw, message):
    """Every POST with a body reads it through the base class (here: save a version)."""
    code, body, _ = await _json_error(
        jp_fetch, "mlfactory", "history", "versions", method="POST", body=raw
    )
    assert (code, body["message"]) == (400, message)
