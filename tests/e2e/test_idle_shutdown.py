"""Idle shutdown on a real hub, with real servers and short timeouts: a server with nothing
running is warned and stopped with its reason; one whose kernel is busy is kept."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
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

pytestmark = [pytest.mark.hub, pytest.mark.browser]

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

    deadline = time.monotonic() + 90
    while not all(servers().get(n, {}).get("ready") for n in ("idle", "busy")):
        assert time.monotonic() < deadline, servers()
        time.sleep(0.5)  # waiting on real servers to start
    # Playwright's sync API owns this thread's event loop: talk to the kernel from another
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, _run_forever(hub.url, token, "busy")).result(timeout=60)

    status_url = f"{hub.url}/services/mlfactory/api/culling/status"
    warned = False
    deadline = time.monotonic() + IDLE_TIMEOUT + 60
    while servers().get("idle", {}).get("ready"):
        assert time.monotonic() < deadline, "the idle server was never stopped"
        status = page.request.get(f"{status_url}?server_name=idle", headers=headers).json()
        warned = warned or status["action"] == "warn"
        time.sleep(1)  # the culler runs on the real clock here
    assert warned, "the user was not warned before the stop"

    def idle_stops() -> list:
        # the pass records its stops once it has walked every server
        overview = page.request.get(status_url, headers=headers).json()
        return [s for s in overview["stops"] if s["server_name"] == "idle"]

    deadline = time.monotonic() + 20
    while not idle_stops():
        assert time.monotonic() < deadline, "the stop was not recorded"
        time.sleep(0.5)
    (stop,) = idle_stops()
    assert stop["reason"] == f"it was idle for {IDLE_TIMEOUT}s"
    assert servers()["busy"]["ready"], "the busy server was stopped"
    busy = page.request.get(f"{status_url}?server_name=busy", headers=headers).json()
    assert busy["action"] == "keep" and busy["reason"] == "a kernel is busy"


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
    deadline = time.monotonic() + 90
    while (
        not page.request.get(f"{hub.url}/hub/api/users/admin", headers=headers)
        .json()["servers"]
        .get("lab", {})
        .get("ready")
    ):
        assert time.monotonic() < deadline
        time.sleep(0.5)  # waiting on a real server to start
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

    deadline = time.monotonic() + 30
    while "an unsaved edit" not in saved_text():
        assert time.monotonic() < deadline, "the warning did not save the open notebook"
        time.sleep(0.5)
    keep.click()
    status_url = f"{hub.url}/services/mlfactory/api/culling/status?server_name=lab"
    status = page.request.get(status_url, headers=headers).json()
    assert status["action"] == "keep" and status["keep_alive_left"] == 2
    assert page.request.get(f"{hub.url}/hub/api/users/admin", headers=headers).json()["servers"][
        "lab"
    ]["ready"]
