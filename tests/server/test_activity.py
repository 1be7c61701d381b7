"""Idle shutdown on the server: the activity reports, and the culling and keep-alive proxies.

A real tornado HTTP server on a free port stands in for the platform service and records
what the extension sends. Reports are made by calling ``ActivityReporter.report()``
directly; only one test lets the periodic callback run, with a tiny interval.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from mlfactory.server import activity, service_client
from tornado import httpserver, netutil, web
from tornado.httpclient import HTTPClientError

from .conftest import CALLER

TOKEN = "hub-api-token"  # what conftest's hub fixtures put in JUPYTERHUB_API_TOKEN
PREFIX = "/services/mlfactory/api/"
STATUS = {
    "server_name": "gpu-1",
    "action": "warn",
    "reason": "it was idle for 1h",
    "deadline": "2026-03-10T14:02:00Z",
    "keep_alive_left": 2,
    "idle_timeout": 3600,
    "last_stop": None,
}


@dataclass
class FakeService:
    """What the stand-in service answers per path (after the api prefix), and what it got."""

    port: int
    answers: dict[str, tuple[int, Any]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    reports_wanted: int = 0
    enough_reports: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def reports(self) -> list[dict[str, Any]]:
        return [r["body"] for r in self.requests if r["path"] == PREFIX + "activity"]


class _Recorder(web.RequestHandler):
    def initialize(self, service: FakeService) -> None:
        self.service = service

    def _answer(self) -> None:
        s = self.service
        s.requests.append(
            {
                "method": self.request.method,
                "path": self.request.path,
                "query": {k: self.get_query_argument(k) for k in self.request.query_arguments},
                "headers": dict(self.request.headers),
                "body": json.loads(self.request.body) if self.request.body else None,
            }
        )
        if s.reports_wanted and len(s.reports) >= s.reports_wanted:
            s.enough_reports.set()
        status, body = s.answers.get(self.request.path.removeprefix(PREFIX), (204, None))
        self.set_status(status)
        if body is not None:
            self.set_header("Content-Type", "application/json")
            self.write(json.dumps(body))
        self.finish()

    get = post = _answer


@pytest.fixture(autouse=True)
def no_service_env(monkeypatch):
    for name in ("MLFACTORY_SERVICE_URL", "JUPYTERHUB_SERVER_NAME", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
async def service():
    sockets = netutil.bind_sockets(0, "127.0.0.1", family=socket.AF_INET)
    state = FakeService(port=sockets[0].getsockname()[1])
    server = httpserver.HTTPServer(web.Application([(r".*", _Recorder, {"service": state})]))
    server.add_sockets(sockets)
    yield state
    server.stop()
    await server.close_all_connections()


@pytest.fixture
def configured(monkeypatch, service, hub_server_of_caller):
    """The hub spawned alice's server "gpu-1" and pointed it at the stand-in service."""
    monkeypatch.setenv(service_client.SERVICE_URL_ENV, service.url)
    monkeypatch.setenv("JUPYTERHUB_SERVER_NAME", "gpu-1")
    return service


def _ext(serverapp):
    return serverapp.extension_manager.extension_points["mlfactory"].app


@pytest.fixture
def reporter(configured, jp_serverapp) -> activity.ActivityReporter:
    return _ext(jp_serverapp).activity_reporter


async def _report(reporter, service) -> dict[str, Any]:
    assert await reporter.report() is True
    return service.reports[-1]


def _is_iso(value: str) -> bool:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).tzinfo is not None


# --- the report ------------------------------------------------------------------------------


async def test_report_without_kernels(reporter, configured):
    report = await _report(reporter, configured)
    assert report == {
        "server_name": "gpu-1",
        "kernels": [],
        "terminals": [],
        "last_save": None,
        "gpu_util": None,
    }
    (asked,) = configured.requests
    assert (asked["method"], asked["path"]) == ("POST", PREFIX + "activity")
    assert asked["headers"]["Authorization"] == f"token {TOKEN}"


async def test_started_kernel_is_reported_with_its_state(reporter, configured, jp_fetch):
    kernel = json.loads((await jp_fetch("api", "kernels", method="POST", body="{}")).body)
    (reported,) = (await _report(reporter, configured))["kernels"]
    assert set(reported) == {"execution_state", "last_activity"}
    assert reported["execution_state"] in {"starting", "idle", "busy"}
    assert _is_iso(reported["last_activity"])
    await jp_fetch("api", "kernels", kernel["id"], method="DELETE")
    assert (await _report(reporter, configured))["kernels"] == []


async def test_kernel_running_a_cell_is_reported_busy(reporter, configured, jp_serverapp):
    manager = jp_serverapp.kernel_manager
    kernel_id = await manager.start_kernel()
    client = manager.get_kernel(kernel_id).client()
    client.start_channels()
    try:
        await client.wait_for_ready(timeout=60)
        # the workload: a cell that runs for a while, as a training loop would
        client.execute("import time; time.sleep(30)")
        states = []
        for _ in range(400):  # until the server has seen the kernel go busy
            states.append((await _report(reporter, configured))["kernels"][0]["execution_state"])
            if states[-1] == "busy":
                break
            await asyncio.sleep(0.05)
        assert states[-1] == "busy", states
    finally:
        client.stop_channels()
        await manager.interrupt_kernel(kernel_id)
        await manager.shutdown_kernel(kernel_id, now=True)


async def test_a_save_sets_last_save(reporter, configured, jp_fetch):
    assert (await _report(reporter, configured))["last_save"] is None
    model = {"type": "file", "format": "text", "content": "print(1)\n"}
    await jp_fetch("api", "contents", "train.py", method="PUT", body=json.dumps(model))
    first = (await _report(reporter, configured))["last_save"]
    assert first is not None and _is_iso(first)


SAVED: list[str] = []


def _users_hook(model, os_path, contents_manager, **kwargs):
    SAVED.append(Path(os_path).name)


@pytest.fixture
def users_save_hook(jp_server_config):
    SAVED.clear()
    jp_server_config["FileContentsManager"] = {"post_save_hook": _users_hook}


# traitlets warns that the config sets the hook on two classes; the hook is the test's own
@pytest.mark.filterwarnings("ignore:Overriding existing post_save_hook:UserWarning")
async def test_a_configured_post_save_hook_keeps_running(
    users_save_hook, reporter, configured, jp_fetch
):
    model = {"type": "file", "format": "text", "content": "x"}
    await jp_fetch("api", "contents", "a.txt", method="PUT", body=json.dumps(model))
    assert SAVED == ["a.txt"]
    assert (await _report(reporter, configured))["last_save"] is not None


# --- GPUs ------------------------------------------------------------------------------------


@pytest.fixture
def fake_nvidia_smi(tmp_path, jp_server_config):
    """A stand-in nvidia-smi, configured through the app's trait, that records its arguments."""
    script = tmp_path / "nvidia-smi"
    args = tmp_path / "args"
    output = tmp_path / "output"
    output.write_text("12\n[N/A]\n87.5\n")
    script.write_text(f'#!/bin/sh\necho "$@" > {args}\ncat {output}\nexit "${{RC:-0}}"\n')
    script.chmod(0o755)
    jp_server_config["MLFactoryServerApp"] = {"nvidia_smi": [str(script), "--query"]}
    return {"script": script, "args": args, "output": output}


async def test_gpu_utilisation_of_this_servers_gpus(
    monkeypatch, fake_nvidia_smi, reporter, configured
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-aaaa-0000,GPU-bbbb-1111")
    assert (await _report(reporter, configured))["gpu_util"] == [12.0, 87.5]
    # only the GPUs given to this server, not every GPU of a shared host
    assert fake_nvidia_smi["args"].read_text().split() == [
        "--query",
        "--id=GPU-aaaa-0000,GPU-bbbb-1111",
    ]


@pytest.mark.parametrize("devices", [None, "", "-1", " , "])
async def test_no_gpus_given_is_null_and_nvidia_smi_not_run(
    monkeypatch, fake_nvidia_smi, reporter, configured, devices
):
    if devices is not None:
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", devices)
    assert (await _report(reporter, configured))["gpu_util"] is None
    assert not fake_nvidia_smi["args"].exists()


@pytest.mark.parametrize(
    "breakage", ["exits-1", "prints-nothing-useful", "missing", "hangs"], ids=str
)
async def test_unreadable_gpus_are_null_and_warned_once(
    monkeypatch, caplog, fake_nvidia_smi, reporter, configured, breakage
):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    if breakage == "exits-1":
        monkeypatch.setenv("RC", "1")
    elif breakage == "prints-nothing-useful":
        fake_nvidia_smi["output"].write_text("[N/A]\n")
    elif breakage == "missing":
        reporter.nvidia_smi = [str(fake_nvidia_smi["script"]) + "-not-there"]
    else:
        monkeypatch.setattr(activity, "NVIDIA_SMI_TIMEOUT_S", 0.2)
        fake_nvidia_smi["script"].write_text("#!/bin/sh\nexec sleep 60\n")
    caplog.set_level(logging.INFO, logger=activity.log.name)
    assert (await _report(reporter, configured))["gpu_util"] is None
    assert (await _report(reporter, configured))["gpu_util"] is None
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "GPU utilisation" in warnings[0].getMessage()


def test_visible_gpus_follow_cuda_rules():
    assert activity.visible_gpus({"CUDA_VISIBLE_DEVICES": "0,1"}) == ["0", "1"]
    # CUDA stops at the first entry that names no device
    assert activity.visible_gpus({"CUDA_VISIBLE_DEVICES": "2,-1,3"}) == ["2"]
    assert activity.visible_gpus({"CUDA_VISIBLE_DEVICES": "0;rm -rf /"}) == []
    assert activity.visible_gpus({}) == []


# --- failures and the server's own activity --------------------------------------------------


async def test_service_down_never_raises_and_warns_once_per_outage(
    monkeypatch, caplog, reporter, configured
):
    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    caplog.set_level(logging.INFO, logger=activity.log.name)
    monkeypatch.setenv(service_client.SERVICE_URL_ENV, f"http://127.0.0.1:{dead}")
    assert await reporter.report() is False
    assert await reporter.report() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "Cannot report activity" in warnings[0].getMessage()
    assert TOKEN not in caplog.text

    monkeypatch.setenv(service_client.SERVICE_URL_ENV, configured.url)
    assert await reporter.report() is True
    assert "reach the platform service again" in caplog.text
    configured.answers["activity"] = (500, {"error": "database is locked"})
    assert await reporter.report() is False
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "database is locked" in warnings[1].getMessage()


async def test_a_bug_while_collecting_never_raises(monkeypatch, reporter, configured):
    async def broken() -> list:
        raise RuntimeError("boom")

    monkeypatch.setattr(reporter, "kernels", broken)
    assert await reporter.report() is False
    assert configured.requests == []


async def test_unconfigured_server_does_not_report(service, hub_server_of_caller, jp_serverapp):
    reporter = _ext(jp_serverapp).activity_reporter
    assert await reporter.report() is False
    reporter.start()
    assert reporter.callback is None
    assert service.requests == []


async def test_reporting_and_the_endpoints_are_not_activity(configured, jp_serverapp, jp_fetch):
    configured.answers["culling/status"] = (200, STATUS)
    configured.answers["culling/keepalive"] = (200, {"deadline": None, "keep_alive_left": 1})
    web_app = jp_serverapp.web_app
    await jp_fetch("api", "status")  # a request that does count, to have a value to compare
    before = web_app.last_activity()
    keys = set(web_app.settings)
    await _ext(jp_serverapp).activity_reporter.report()
    await jp_fetch("mlfactory", "api", "culling")
    await jp_fetch("mlfactory", "api", "keepalive", method="POST", body="{}")
    assert len(configured.requests) == 3
    assert web_app.last_activity() == before
    assert set(web_app.settings) == keys


@pytest.fixture
def fast_reports(jp_server_config):
    jp_server_config["MLFactoryServerApp"] = {"report_interval": 0.05}


async def test_the_periodic_report_starts_and_stops(fast_reports, configured, jp_serverapp):
    ext = _ext(jp_serverapp)
    configured.reports_wanted = 3
    await ext._start_jupyter_server_extension(jp_serverapp)
    assert ext.activity_reporter.callback.is_running()
    # the callback, not the test, makes the reports: wait for them, bounded
    await asyncio.wait_for(configured.enough_reports.wait(), timeout=30)
    await ext.stop_extension()
    assert ext.activity_reporter.callback is None


# --- GET /mlfactory/api/culling and POST /mlfactory/api/keepalive -----------------------------


async def _json_error(fetch, *parts, **kwargs):
    with pytest.raises(HTTPClientError) as e:
        await fetch(*parts, **kwargs)
    body = e.value.response.body.decode()
    assert "Traceback" not in body
    return e.value.code, json.loads(body)


async def test_culling_status_is_this_servers(configured, jp_fetch):
    configured.answers["culling/status"] = (200, STATUS)
    r = await jp_fetch("mlfactory", "api", "culling")
    assert json.loads(r.body) == STATUS
    assert r.headers["Cache-Control"] == "no-store"
    (asked,) = configured.requests
    assert (asked["method"], asked["path"]) == ("GET", PREFIX + "culling/status")
    assert asked["query"] == {"server_name": "gpu-1"}
    assert asked["headers"]["Authorization"] == f"token {TOKEN}"


async def test_keepalive_forwards_this_servers_name(configured, jp_fetch):
    configured.answers["culling/keepalive"] = (200, {"deadline": None, "keep_alive_left": 2})
    # the body is not the caller's to choose: it names another server here
    r = await jp_fetch(
        "mlfactory", "api", "keepalive", method="POST", body='{"server_name": "other"}'
    )
    assert json.loads(r.body) == {"deadline": None, "keep_alive_left": 2}
    (asked,) = configured.requests
    assert (asked["method"], asked["path"]) == ("POST", PREFIX + "culling/keepalive")
    assert asked["body"] == {"server_name": "gpu-1"}


async def test_keepalive_without_presses_left_is_409_with_the_services_words(configured, jp_fetch):
    said = "You pressed Keep running 3 times already; save your work now."
    configured.answers["culling/keepalive"] = (409, {"error": said})
    code, reply = await _json_error(
        jp_fetch, "mlfactory", "api", "keepalive", method="POST", body="{}"
    )
    assert code == 409
    assert reply == {"message": said, "reason": "refused-by-service"}


ROUTES = [
    (("mlfactory", "api", "culling"), {}),
    (("mlfactory", "api", "keepalive"), {"method": "POST", "body": "{}"}),
]


@pytest.mark.parametrize(("route", "kwargs"), ROUTES, ids=["culling", "keepalive"])
async def test_unconfigured_is_503(service, hub_server_of_caller, jp_fetch, route, kwargs):
    code, reply = await _json_error(jp_fetch, *route, **kwargs)
    assert (code, reply["reason"]) == (503, "not-configured")
    assert "MLFACTORY_SERVICE_URL is unset" in reply["message"]
    assert service.requests == []


@pytest.mark.parametrize(("route", "kwargs"), ROUTES, ids=["culling", "keepalive"])
async def test_service_down_is_503(monkeypatch, configured, jp_fetch, route, kwargs):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    monkeypatch.setenv(service_client.SERVICE_URL_ENV, f"http://127.0.0.1:{dead}")
    code, reply = await _json_error(jp_fetch, *route, **kwargs)
    assert (code, reply["reason"]) == (503, "unreachable")
    assert "cannot be reached" in reply["message"]


@pytest.mark.parametrize(("route", "kwargs"), ROUTES, ids=["culling", "keepalive"])
@pytest.mark.parametrize(
    ("status", "body", "code", "reason"),
    [
        (403, {"error": "no access"}, 502, "refused"),
        (404, None, 502, "not-found"),
        (500, {"error": "boom"}, 503, "service-error"),
        (409, None, 502, "service-error"),  # a 409 without words: nothing to pass on
    ],
)
async def test_service_errors_become_messages(
    configured, jp_fetch, route, kwargs, status, body, code, reason
):
    configured.answers["culling/status"] = configured.answers["culling/keepalive"] = (
        status,
        body,
    )
    got, reply = await _json_error(jp_fetch, *route, **kwargs)
    assert (got, reply["reason"]) == (code, reason)
    assert set(reply) == {"message", "reason"}


@pytest.mark.parametrize(("route", "kwargs"), ROUTES, ids=["culling", "keepalive"])
async def test_shared_user_gets_403_and_the_service_is_not_asked(
    monkeypatch, service, hub_server_shared_with_caller, jp_fetch, route, kwargs
):
    monkeypatch.setenv(service_client.SERVICE_URL_ENV, service.url)
    code, reply = await _json_error(jp_fetch, *route, **kwargs)
    assert code == 403
    assert reply["message"].startswith("Only the owner of this server (bob) can do this")
    assert CALLER in reply["message"]
    assert service.requests == []


async def test_authorizer_is_consulted(deny_all, configured, jp_fetch):
    for route, kwargs in ROUTES:
        code, _ = await _json_error(jp_fetch, *route, **kwargs)
        assert code == 403
    assert deny_all.asked == [
        ("read", "mlfactory:culling"),
        ("write", "mlfactory:culling"),
    ]
    assert configured.requests == []
