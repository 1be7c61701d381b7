"""The Models panel's routes: the server relays them to the platform service's model
registry with its hub token, checks what it relays, and passes the registry's refusals
through in its words. A real tornado server on a free port stands in for the registry, so
the URL, method, token and body the extension sends are checked over HTTP."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

import pytest
from mlfactory.server import service_client
from tornado import httpserver, web
from tornado.httpclient import HTTPClientError

from tests.ports import free_port

TOKEN = "hub-api-token"  # what conftest's hub fixtures put in JUPYTERHUB_API_TOKEN
PREFIX = "/services/mlfactory/api"


@dataclass
class Registry:
    """What the stand-in registry answers, and what it was asked."""

    port: int
    status: int = 200
    body: dict[str, Any] = field(default_factory=lambda: {"models": []})
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _Recorder(web.RequestHandler):
    SUPPORTED_METHODS = ("GET", "PATCH", "PUT")

    def initialize(self, registry: Registry) -> None:
        self.registry = registry

    def _answer(self) -> None:
        r = self.registry
        r.requests.append(
            {
                "method": self.request.method,
                "path": self.request.path,
                "auth": self.request.headers.get("Authorization"),
                "body": json.loads(self.request.body) if self.request.body else None,
            }
        )
        self.set_status(r.status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(r.body))

    get = patch = put = lambda self, path: self._answer()  # noqa: E731


@pytest.fixture
async def registry():
    port = free_port()
    state = Registry(port=port)
    server = httpserver.HTTPServer(web.Application([(r"(.*)", _Recorder, {"registry": state})]))
    server.listen(port, "127.0.0.1")
    yield state
    server.stop()
    await server.close_all_connections()


@pytest.fixture
def configured(monkeypatch, registry, hub_server_of_caller):
    monkeypatch.setenv(service_client.SERVICE_URL_ENV, registry.url)
    return registry


async def _refusal(fetch, *parts, **kw):
    with pytest.raises(HTTPClientError) as e:
        await fetch(*parts, **kw)
    body = e.value.response.body.decode()
    assert "Traceback" not in body
    return e.value.code, json.loads(body)


def _json(method: str, body: Any) -> dict[str, Any]:
    return {"method": method, "body": json.dumps(body), "allow_nonstandard_methods": True}


async def test_the_list_and_a_model_are_relayed_with_the_servers_token(configured, jp_fetch):
    configured.body = {"models": [{"name": "iris", "latest": 2}]}
    r = await jp_fetch("mlfactory", "models")
    assert json.loads(r.body) == configured.body
    assert r.headers["Cache-Control"] == "no-store"
    await jp_fetch("mlfactory", "models", "iris")
    assert [(q["method"], q["path"], q["auth"]) for q in configured.requests] == [
        ("GET", f"{PREFIX}/models", f"token {TOKEN}"),
        ("GET", f"{PREFIX}/models/iris", f"token {TOKEN}"),
    ]


async def test_owner_actions_send_only_what_was_checked(configured, jp_fetch):
    await jp_fetch(
        "mlfactory", "models", "iris", "aliases", "production", **_json("PUT", {"version": 2})
    )
    await jp_fetch(
        "mlfactory", "models", "iris", "versions", "1", **_json("PATCH", {"serving": False, "x": 1})
    )
    await jp_fetch(
        "mlfactory",
        "models",
        "iris",
        **_json("PATCH", {"groups": ["b", "a", "a"], "predict_groups": ["team"], "owner": "eve"}),
    )
    assert [(q["method"], q["path"], q["body"]) for q in configured.requests] == [
        ("PUT", f"{PREFIX}/models/iris/aliases/production", {"version": 2}),
        ("PATCH", f"{PREFIX}/models/iris/versions/1", {"serving": False}),
        ("PATCH", f"{PREFIX}/models/iris", {"groups": ["a", "b"], "predict_groups": ["team"]}),
    ]


@pytest.mark.parametrize(
    ("parts", "body", "words"),
    [
        (("iris", "aliases", "production"), {"version": "2"}, "version"),
        (("iris", "aliases", "production"), {"version": 0}, "version"),
        (("iris", "versions", "1"), {"serving": "no"}, "serving"),
        (("iris",), {}, "groups"),
        (("iris",), {"groups": "all"}, "groups"),
    ],
)
async def test_malformed_requests_never_reach_the_registry(
    configured, jp_fetch, parts, body, words
):
    method = "PUT" if "aliases" in parts else "PATCH"
    code, reply = await _refusal(jp_fetch, "mlfactory", "models", *parts, **_json(method, body))
    assert code == 400 and words in reply["message"]
    assert configured.requests == []


async def test_a_version_that_is_not_a_number_is_404(configured, jp_fetch):
    code, reply = await _refusal(
        jp_fetch,
        "mlfactory",
        "models",
        "iris",
        "versions",
        "01",
        **_json("PATCH", {"serving": True}),
    )
    assert code == 404 and "not a version number" in reply["message"]
    assert configured.requests == []


async def test_the_registrys_refusal_keeps_its_status_and_words(configured, jp_fetch):
    configured.status = 403
    configured.body = {"error": "Only alice, the owner of 'iris', can change who may publish it."}
    code, reply = await _refusal(
        jp_fetch, "mlfactory", "models", "iris", **_json("PATCH", {"groups": []})
    )
    assert code == 403 and reply["message"] == configured.body["error"]


async def test_without_a_registry_the_panel_is_told_why(hub_server_of_caller, jp_fetch):
    code, reply = await _refusal(jp_fetch, "mlfactory", "models")
    assert code == 503 and reply["reason"] == "not-configured"
    assert "MLFACTORY_SERVICE_URL" in reply["message"]


async def test_a_visitor_on_a_shared_server_may_not_act_for_the_owner(
    monkeypatch, registry, hub_server_shared_with_caller, jp_fetch
):
    monkeypatch.setenv(service_client.SERVICE_URL_ENV, registry.url)
    code, reply = await _refusal(jp_fetch, "mlfactory", "models")
    assert code == 403 and "Only the owner of this server (bob)" in reply["message"]
    assert registry.requests == []
