"""GET /mlfactory/api/budget: the server asks the platform service for its owner's budgets.

A real tornado HTTP server on a free port stands in for the service, so the request the
extension sends (URL, token) and what it makes of each answer are checked over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass, field
from typing import Any

import pytest
from mlfactory.server import budget
from tornado import httpserver, netutil, web
from tornado.httpclient import HTTPClientError

from .conftest import CALLER

ROUTE = ("mlfactory", "api", "budget")
TOKEN = "hub-api-token"  # what conftest's hub fixtures put in JUPYTERHUB_API_TOKEN

ME = {
    "user": CALLER,
    "currency": "USD",
    "budgets": [
        {
            "kind": "user",
            "name": CALLER,
            "amount": 100.0,
            "period": "monthly",
            "enforcement": "block",
            "spent": 12.3,
            "fraction": 0.123,
            "thresholds": [0.5, 0.8, 1.0],
            "period_start": "2026-03-01T00:00:00Z",
            "resets_at": "2026-04-01T00:00:00Z",
        }
    ],
    "notices": [
        {
            "id": 7,
            "kind": "user",
            "name": CALLER,
            "threshold": 0.5,
            "message": "<b>50%</b> of your monthly budget is spent",
            "fired_at": "2026-03-10T09:00:00Z",
        }
    ],
    "servers": [],
}


@dataclass
class FakeService:
    """What the stand-in service answers, and what it was asked."""

    port: int
    status: int = 200
    body: bytes = json.dumps(ME).encode()
    hold: asyncio.Event | None = None  # when set, requests wait for it before answering
    requests: list[dict[str, Any]] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


class _Recorder(web.RequestHandler):
    def initialize(self, service: FakeService) -> None:
        self.service = service

    async def get(self, path: str) -> None:
        s = self.service
        s.requests.append({"path": self.request.path, "headers": dict(self.request.headers)})
        if s.hold is not None:
            await s.hold.wait()
        self.set_status(s.status)
        self.set_header("Content-Type", "application/json")
        self.finish(s.body)


@pytest.fixture(autouse=True)
def fresh_proxy(monkeypatch):
    """No service configured and an empty cache, whatever ran before."""
    monkeypatch.delenv(budget.SERVICE_URL_ENV, raising=False)
    budget.clear_cache()
    yield
    budget.clear_cache()


@pytest.fixture
async def service():
    sockets = netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    state = FakeService(port=sockets[0].getsockname()[1])
    app = web.Application([(r"(.*)", _Recorder, {"service": state})])
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    yield state
    if state.hold is not None:
        state.hold.set()
    server.stop()
    await server.close_all_connections()


@pytest.fixture
def configured(monkeypatch, service, hub_server_of_caller):
    """The hub spawned this server for alice and pointed it at the stand-in service."""
    monkeypatch.setenv(budget.SERVICE_URL_ENV, service.url)
    return service


@pytest.fixture
def fake_clock(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(budget, "clock", lambda: now[0])
    return now


async def _json_error(fetch, *parts, **kwargs):
    with pytest.raises(HTTPClientError) as e:
        await fetch(*parts, **kwargs)
    body = e.value.response.body.decode()
    assert "Traceback" not in body and "traceback" not in body
    return e.value.code, json.loads(body)


async def test_passes_the_service_answer_through(configured, jp_fetch):
    r = await jp_fetch(*ROUTE)
    assert r.code == 200
    assert json.loads(r.body) == ME
    assert r.headers["Cache-Control"] == "no-store"
    (asked,) = configured.requests
    # a hub-managed service serves under its prefix even when reached directly
    assert asked["path"] == "/services/mlfactory/api/me"
    assert asked["headers"]["Authorization"] == f"token {TOKEN}"


async def test_service_url_with_its_prefix(monkeypatch, configured, jp_fetch):
    monkeypatch.setenv(budget.SERVICE_URL_ENV, f"{configured.url}/hub-a/services/mlfactory")
    await jp_fetch(*ROUTE)
    assert [q["path"] for q in configured.requests] == ["/hub-a/services/mlfactory/api/me"]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("http://10.0.0.5:10101", "http://10.0.0.5:10101/services/mlfactory/api/me"),
        ("http://10.0.0.5:10101/", "http://10.0.0.5:10101/services/mlfactory/api/me"),
        (
            "https://hub.example/services/mlfactory/",
            "https://hub.example/services/mlfactory/api/me",
        ),
        (" http://svc/x/services/mlfactory ", "http://svc/x/services/mlfactory/api/me"),
    ],
)
def test_me_url(given, expected):
    assert budget.me_url(given) == expected


async def test_answers_are_cached_briefly(configured, fake_clock, jp_fetch):
    first = json.loads((await jp_fetch(*ROUTE)).body)
    configured.body = json.dumps({**ME, "currency": "EUR"}).encode()
    fake_clock[0] += 19
    assert json.loads((await jp_fetch(*ROUTE)).body) == first
    assert len(configured.requests) == 1
    fake_clock[0] += 2
    assert json.loads((await jp_fetch(*ROUTE)).body)["currency"] == "EUR"
    assert len(configured.requests) == 2


async def test_concurrent_tabs_share_one_request(monkeypatch, configured, jp_fetch):
    configured.hold = asyncio.Event()
    tabs = 5
    arrived = asyncio.Event()
    count = [0]
    real = budget.fetch_budget

    async def counting(url: str, token: str) -> budget.Answer:
        count[0] += 1
        if count[0] == tabs:
            arrived.set()
        return await real(url, token)

    monkeypatch.setattr(budget, "fetch_budget", counting)
    calls = [asyncio.ensure_future(jp_fetch(*ROUTE)) for _ in range(tabs)]
    await arrived.wait()  # every tab is waiting on the service before it answers
    configured.hold.set()
    replies = await asyncio.gather(*calls)
    assert [json.loads(r.body) for r in replies] == [ME] * tabs
    assert len(configured.requests) == 1


async def test_service_down_is_503(monkeypatch, configured, jp_fetch):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv(budget.SERVICE_URL_ENV, f"http://127.0.0.1:{dead}")
    code, reply = await _json_error(jp_fetch, *ROUTE)
    assert code == 503
    assert reply == {"message": budget.UNREACHABLE, "reason": "unreachable"}
    assert TOKEN not in reply["message"]


async def test_failures_are_not_cached(configured, jp_fetch):
    configured.status, configured.body = 500, b'{"error": "database is locked"}'
    code, reply = await _json_error(jp_fetch, *ROUTE)
    assert (code, reply["reason"]) == (503, "service-error")
    configured.status, configured.body = 200, json.dumps(ME).encode()
    assert json.loads((await jp_fetch(*ROUTE)).body) == ME
    assert len(configured.requests) == 2


async def test_service_that_hangs_times_out_as_503(monkeypatch, configured, jp_fetch):
    monkeypatch.setattr(budget, "TIMEOUT_S", 0.2)
    configured.hold = asyncio.Event()  # never set while the request is out
    code, reply = await _json_error(jp_fetch, *ROUTE)
    assert (code, reply["reason"]) == (503, "unreachable")


@pytest.mark.parametrize(
    ("status", "body", "code", "reason", "says"),
    [
        (403, b'{"error": "You do not have access"}', 502, "refused", "access:services"),
        (401, b"", 502, "refused", "access:services"),
        (404, b"<html>not found</html>", 502, "not-found", "MLFACTORY_SERVICE_URL"),
        (500, b'{"error": "The platform service failed."}', 503, "service-error", "(500)"),
        (400, b'{"error": "bad request"}', 502, "service-error", "bad request."),
        (200, b"<html>login</html>", 502, "service-error", "JSON object"),
        (200, b"[1, 2]", 502, "service-error", "JSON object"),
        (302, b"", 502, "service-error", "JSON object"),
    ],
)
async def test_service_errors_become_messages(
    configured, jp_fetch, status, body, code, reason, says
):
    configured.status, configured.body = status, body
    got, reply = await _json_error(jp_fetch, *ROUTE)
    assert (got, reply["reason"]) == (code, reason)
    assert says in reply["message"]
    assert set(reply) == {"message", "reason"}


async def test_not_configured_is_503(service, hub_server_of_caller, jp_fetch):
    code, reply = await _json_error(jp_fetch, *ROUTE)
    assert code == 503
    assert reply["reason"] == "not-configured"
    assert "MLFACTORY_SERVICE_URL is unset" in reply["message"]
    assert service.requests == []


async def test_standalone_server_without_hub_token_is_not_configured(
    monkeypatch, service, jp_fetch
):
    monkeypatch.setenv(budget.SERVICE_URL_ENV, service.url)
    code, reply = await _json_error(jp_fetch, *ROUTE)
    assert (code, reply["reason"]) == (503, "not-configured")
    assert "JUPYTERHUB_API_TOKEN is unset" in reply["message"]
    assert service.requests == []


async def test_shared_user_gets_403_and_the_service_is_not_asked(
    monkeypatch, service, hub_server_shared_with_caller, jp_fetch
):
    monkeypatch.setenv(budget.SERVICE_URL_ENV, service.url)
    code, reply = await _json_error(jp_fetch, *ROUTE)
    assert code == 403
    assert reply["message"].startswith("Only the owner of this server (bob) can do this")
    assert service.requests == []


async def test_authorizer_is_consulted(deny_all, configured, jp_fetch):
    code, reply = await _json_error(jp_fetch, *ROUTE)
    assert code == 403
    assert deny_all.asked == [("read", "mlfactory:budget")]
    assert configured.requests == []


async def test_unauthenticated_caller_is_refused(configured, jp_serverapp, http_server_client):
    r = await http_server_client.fetch(
        f"{jp_serverapp.base_url}mlfactory/api/budget", raise_error=False
    )
    assert r.code == 403
    assert configured.requests == []


async def test_polling_is_not_user_activity(configured, jp_fetch, jp_serverapp):
    before = jp_serverapp.web_app.settings.get("api_last_activity")
    await jp_fetch(*ROUTE)
    assert jp_serverapp.web_app.settings.get("api_last_activity") == before


# --- GET /mlfactory/api/stop-ticket: the same proxy, for JupyterLab's stop notice -------


async def test_stop_ticket_asks_for_this_server(monkeypatch, configured, jp_fetch):
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "gpu")
    configured.body = json.dumps({"server_name": "gpu", "ticket": "t", "expires": "x"}).encode()
    r = await jp_fetch("mlfactory", "api", "stop-ticket")
    assert json.loads(r.body)["ticket"] == "t"
    assert r.headers["Cache-Control"] == "no-store"
    (asked,) = configured.requests
    assert asked["path"] == "/services/mlfactory/api/culling/stop-ticket"
    assert asked["headers"]["Authorization"] == f"token {TOKEN}"


async def test_stop_ticket_is_the_owners_and_says_when_unconfigured(
    hub_server_shared_with_caller, jp_fetch
):
    code, body = await _json_error(jp_fetch, "mlfactory", "api", "stop-ticket")
    assert code == 403 and "Only the owner" in body["message"]


async def test_stop_ticket_without_a_service(hub_server_of_caller, jp_fetch):
    code, body = await _json_error(jp_fetch, "mlfactory", "api", "stop-ticket")
    assert code == 503 and body["reason"] == "not-configured"
