"""Idle shutdown on a real hub, with real servers and short timeouts: a server with nothing
running is warned and stopped with its reason; one whose kernel is busy is kept; after the
hub was unreachable nothing is stopped during the grace period."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from mlfactory.hub.platform_config import parse_platform_config
from mlfactory.service.culler import Culler
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.hubapi import HubAPI
from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

from .conftest import (
    ADMIN_PASSWORD,
    api_token,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
)
from .helpers import HubClient, poll

pytestmark = [pytest.mark.hub]

IDLE_TIMEOUT = 30  # seconds: the real clock runs in this test, so keep it short


@pytest.fixture(scope="module")
def idle_hub():
    config = example_config()
    config["culling"] = {
        "idle_timeout": f"{IDLE_TIMEOUT}s",
        "warn_before": "10s",
        "every": "2s",
        "grace_after_restart": "0s",
    }
    config["accounting"]["interval"] = "2s"
    data, config_path = prepare_hub("idle", config)
    hub = start_hub(
        data,
        "--MLFactoryLocalSpawner.args=['--MLFactoryServerApp.report_interval=2']",
        config=config_path,
    )
    yield hub
    discard_hub(hub, config_path)


async def _run_forever(hub_url: str, token: str, server: str) -> None:
    """Start a kernel in ``server`` and have it execute a long cell (the busy workload)."""
    from tornado.httpclient import AsyncHTTPClient

    base = f"{hub_url}/user/admin/{server}"
    headers = {"Authorization": f"token {token}"}
    resp = await AsyncHTTPClient().fetch(
        f"{base}/api/kernels", method="POST", body="{}", headers=headers
    )
    kernel = json.loads(resp.body)["id"]
    ws_url = base.replace("http", "ws", 1) + f"/api/kernels/{kernel}/channels"
    ws = await websocket_connect(HTTPRequest(ws_url, headers=headers))
    msg = {
        "header": {"msg_id": uuid.uuid4().hex, "msg_type": "execute_request", "username": "admin",
                   "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
        "parent_header": {}, "metadata": {}, "channel": "shell",
        "content": {"code": "import time\ntime.sleep(600)", "silent": False, "store_history": False,
                    "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
    }  # fmt: skip
    await ws.write_message(json.dumps(msg))
    while True:  # wait until the kernel says it is busy, then leave it running
        reply = json.loads(await ws.read_message())
        if reply.get("msg_type") == "status" and reply["content"]["execution_state"] == "busy":
            ws.close()
            return


@pytest.mark.browser
def test_idle_server_is_stopped_and_busy_one_is_kept(idle_hub, page):
    hub = idle_hub
    log_in(page, hub, "admin", ADMIN_PASSWORD, next_url="/hub/home")
    token = api_token(page, hub, "admin")
    headers = {"Authorization": f"token {token}"}
    for name in ("idle", "busy"):
        r = page.request.post(
            f"{hub.url}/hub/api/users/admin/servers/{name}",
            data=json.dumps({"profile": "cpu-small"}),
            headers=headers,
        )
        assert r.status in (201, 202), r.text()

    def servers() -> dict:
        return page.request.get(f"{hub.url}/hub/api/users/admin", headers=headers).json()["servers"]

    poll(
        lambda: all(servers().get(n, {}).get("ready") for n in ("idle", "busy")),
        90,
        lambda: f"both servers ready: {servers()}",
    )
    # Playwright's sync API owns this thread's event loop: talk to the kernel from another
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _run_forever(hub.url, token, "busy")).result(timeout=60)

    status_url = f"{hub.url}/services/mlfactory/api/culling/status"
    actions: set[str] = set()

    def idle_stopped() -> bool:
        if not servers().get("idle", {}).get("ready"):
            return True
        status = page.request.get(f"{status_url}?server_name=idle", headers=headers).json()
        actions.add(status["action"])
        return False

    # the culler runs on the real clock here
    poll(idle_stopped, IDLE_TIMEOUT + 60, "the idle server stopped")
    assert "warn" in actions, "the user was not warned before the stop"

    def idle_stops() -> list:
        # the pass records its stops once it has walked every server
        overview = page.request.get(status_url, headers=headers).json()
        return [s for s in overview["stops"] if s["server_name"] == "idle"]

    (stop,) = poll(idle_stops, 20, "the stop recorded")
    assert stop["reason"] == f"it was idle for {IDLE_TIMEOUT}s"
    assert servers()["busy"]["ready"], "the busy server was stopped"
    busy = page.request.get(f"{status_url}?server_name=busy", headers=headers).json()
    assert busy["action"] == "keep" and busy["reason"] == "a kernel is busy"


@pytest.mark.browser
def test_jupyterlab_warns_saves_unsaved_work_and_keeps_running(idle_hub, page):
    """The user at their notebook: the warning appears in JupyterLab, the unsaved edit is
    saved before any stop, and "Keep running" puts the stop off."""
    hub = idle_hub
    log_in(page, hub, "admin", ADMIN_PASSWORD, next_url="/hub/home")
    token = api_token(page, hub, "admin")
    headers = {"Authorization": f"token {token}"}
    r = page.request.post(
        f"{hub.url}/hub/api/users/admin/servers/lab",
        data=json.dumps({"profile": "cpu-small"}),
        headers=headers,
    )
    assert r.status in (201, 202), r.text()
    base = f"{hub.url}/user/admin/lab"
    HubClient(hub, token=token).wait_ready("lab", 90)
    notebook = {
        "cells": [{"cell_type": "markdown", "metadata": {}, "source": "start", "id": "c1"}],
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3",
                                     "language": "python"}},
        "nbformat": 4, "nbformat_minor": 5,
    }  # fmt: skip
    r = page.request.put(
        f"{base}/api/contents/work.ipynb",
        data=json.dumps({"type": "notebook", "content": notebook}),
        headers=headers,
    )
    assert r.status in (200, 201), r.text()

    page.goto(f"{base}/lab/tree/work.ipynb")
    cell = page.locator(".jp-Notebook .jp-Cell").first
    cell.wait_for(timeout=90_000)
    page.locator(".jp-Notebook").first.wait_for(timeout=10_000)
    # JupyterLab may still ask which kernel to use: take what it offers
    dialog = page.locator(".jp-Dialog .jp-mod-accept")
    if dialog.count():
        dialog.first.click()
    cell.click()
    page.keyboard.press("Enter")  # edit mode on the markdown cell
    page.locator(".jp-Notebook.jp-mod-editMode").wait_for(timeout=10_000)
    page.keyboard.press("End")
    page.keyboard.type(" and an unsaved edit")  # the notebook now has unsaved changes
    page.locator(".lm-TabBar-tab.jp-mod-dirty").first.wait_for(timeout=10_000)
    keep = page.get_by_role("button", name="Keep running")
    keep.wait_for(timeout=(IDLE_TIMEOUT + 30) * 1000)
    screenshot(page, "idle-warning-in-jupyterlab")

    def saved_text() -> str:
        model = page.request.get(f"{base}/api/contents/work.ipynb", headers=headers).json()
        return "\n".join("".join(c["source"]) for c in model["content"]["cells"])

    poll(lambda: "an unsaved edit" in saved_text(), 30, "the warning saved the open notebook")
    # the click sends the keep-alive: read the status once that request has been answered
    with page.expect_response(lambda r: "keepalive" in r.url and r.request.method == "POST"):
        keep.click()
    status_url = f"{hub.url}/services/mlfactory/api/culling/status?server_name=lab"
    status = page.request.get(status_url, headers=headers).json()
    assert status["action"] == "keep" and status["keep_alive_left"] == 2
    assert page.request.get(f"{hub.url}/hub/api/users/admin", headers=headers).json()["servers"][
        "lab"
    ]["ready"]


class Clock:
    """The culler's injected time: starts at the real time (the hub's timestamps), then
    moves only when the test says."""

    def __init__(self) -> None:
        self.t = time.time()

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


def test_nothing_is_stopped_during_the_grace_after_the_hub_returns(tmp_path):
    """A real hub and server; a culler on an injected clock. The server is warned, the hub
    hangs (SIGSTOP) through the pass at its deadline, and when it answers again nothing is
    stopped for ``grace_after_restart``; then the user is warned in full before the stop."""
    config = example_config()
    config["culling"] = {"enabled": False}  # the hub's own service stays out of this
    data, config_path = prepare_hub("outage", config)
    hub = start_hub(data, config=config_path)
    try:
        admin = HubClient(hub)
        token = admin.token
        admin.spawn("quiet")

        def server() -> dict | None:
            return admin.servers().get("quiet")

        admin.wait_ready("quiet", 90)
        # a browser test before this one leaves Playwright's loop running in this thread
        with ThreadPoolExecutor(1) as pool:
            db = tmp_path / "platform.sqlite"
            pool.submit(asyncio.run, _passes_through_an_outage(hub, token, db, server)).result()
    finally:
        discard_hub(hub, config_path)


async def _passes_through_an_outage(hub, token: str, db: Path, server) -> None:
    limits = {"idle_timeout": "1h", "warn_before": "10m", "grace_after_restart": "330s"}
    cfg = parse_platform_config({**example_config(), "culling": limits}, "test.yaml")
    engine = make_engine(f"sqlite:///{db}")
    upgrade(engine)
    clock = Clock()
    api = f"{hub.url}/hub/api"
    culler = Culler(engine, cfg, hub=HubAPI(api, token, timeout=3), hub_url=api, token=token,
                    clock=clock)  # fmt: skip

    async def status() -> dict:
        return await culler.status("admin", "quiet")

    clock.advance(55 * 60)  # nobody used it: warned, to stop at 1h
    assert (await culler.run_pass())["warned"] == 1
    assert (await status())["action"] == "warn"
    os.kill(hub.proc.pid, signal.SIGSTOP)  # the hub hangs
    try:
        clock.advance(10 * 60)  # its deadline passes while the hub does not answer
        assert (await culler.run_pass())["ok"] is False
    finally:
        os.kill(hub.proc.pid, signal.SIGCONT)
    result = await culler.run_pass()
    assert result["ok"] is True and result["stopped"] == 0, result
    assert (await status())["action"] == "keep" and server()["ready"]
    clock.advance(329)  # just inside the grace
    await culler.run_pass()
    assert server()["ready"], "stopped during the grace after the hub returned"
    clock.advance(2)  # the grace is over: warned in full before any stop
    await culler.run_pass()
    assert (await status())["action"] == "warn" and server()["ready"]
    clock.advance(10 * 60)
    result = await culler.run_pass()
    assert result["stopped"] == 1, result
    assert server() is None or not server()["ready"]
    assert (await status())["last_stop"]["reason"] == "it was idle for 1h"
    engine.dispose()


def test_the_service_behind_the_real_hub_refuses_non_finite_numbers(idle_hub):
    admin = HubClient(idle_hub)
    url = "/services/mlfactory/api/activity"
    for number in ("NaN", "Infinity"):
        body = f'{{"server_name": "x", "gpu_util": [{number}]}}'
        r = admin.post(url, data=body)
        assert r.status_code == 400, (number, r.text)
        assert "not valid JSON" in r.json()["error"]
    r = admin.post(url, json={"server_name": "x", "gpu_util": [3.0]})
    assert r.status_code == 204, r.text


def test_a_budget_from_the_real_service_can_be_put_back(idle_hub):
    admin = HubClient(idle_hub)
    url = "/services/mlfactory/api/budgets/user/nobody-here"
    first = {"amount": 5, "enforcement": "stop", "grace": "5m"}  # the config's names
    assert admin.put(url, json=first).status_code in (200, 201)
    got = admin.get(url).json()
    assert got["grace_seconds"] == 300
    r = admin.put(url, json=got)
    assert r.status_code == 200, r.text
    assert r.json() == got
    assert admin.get(url).json() == got
