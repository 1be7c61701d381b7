"""``proxy.kind: traefik``: the hub starts Traefik (jupyterhub-traefik-proxy's file provider)
instead of configurable-http-proxy, and every flow goes through it: login, a spawn,
JupyterLab in Chromium, kernel and terminal websockets, a named server, the models service
with a token, a stop, and the routes again after a hub restart."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import stat
import uuid
from collections.abc import Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
from tornado.httpclient import AsyncHTTPClient, HTTPRequest
from tornado.websocket import websocket_connect

from tests.ports import free_port

from .conftest import (
    ADMIN_PASSWORD,
    RealHub,
    api_token,
    discard_hub,
    example_config,
    log_in,
    prepare_hub,
    screenshot,
    start_hub,
    stop_hub,
)
from .helpers import HubClient, poll

pytestmark = [pytest.mark.hub]

T = TypeVar("T")
CELL_TEXT = "through traefik, collaboratively"
CELL = {"cell_type": "markdown", "id": "c1", "metadata": {}, "source": CELL_TEXT}
ROW = {"sepal_length": 5.1, "sepal_width": 3.5, "petal_length": 1.4, "petal_width": 0.2}


def traefik_config() -> dict:
    config = example_config()
    config["proxy"] = {"kind": "traefik"}
    config["models"] = {"users": ["admin"]}
    return config


def publish_iris(data: Path) -> None:
    """A small classifier in the registry's folder, which the models service serves."""
    from mlfactory.model_api import Model, ModelRepository
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    iris = load_iris()
    clf = LogisticRegression(max_iter=500).fit(iris.data, iris.target)
    model = Model(
        clf,
        task="classification",
        name="iris",
        labels=list(iris.target_names),
        input_schema=list(ROW),
    )
    ModelRepository(data / "hub" / "models").publish(model, alias="production")


def start_traefik_hub(data: Path, config_path: Path, *args: str) -> RealHub:
    return start_hub(
        data,
        f"--TraefikProxy.traefik_api_url=http://127.0.0.1:{free_port()}",
        *args,
        config=config_path,
        timeout=120,
    )


def traefik_pid(hub: RealHub) -> int:
    """The proxy the hub started: a traefik process, and no configurable-http-proxy."""
    pid_file = hub.data / "hub" / "traefik.pid"
    assert pid_file.exists(), hub.log()[-3000:]
    pid = int(pid_file.read_text())
    cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    assert cmdline[0].endswith(b"traefik"), cmdline
    assert not (hub.data / "hub" / "jupyterhub-proxy.pid").exists()
    return pid


def discard_traefik_hub(hub: RealHub, config_path: Path) -> None:
    """``discard_hub``, and the hub's traefik too if the hub had to be killed (a traefik
    nobody stops would keep its ports)."""
    pid_file = hub.data / "hub" / "traefik.pid"
    pid = int(pid_file.read_text()) if pid_file.exists() else None
    discard_hub(hub, config_path)
    if pid and Path(f"/proc/{pid}/cmdline").exists():
        if Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].endswith(b"traefik"):
            os.kill(pid, signal.SIGKILL)


@pytest.fixture(scope="module")
def hub() -> Iterator[RealHub]:
    data, config_path = prepare_hub("traefik", traefik_config())
    publish_iris(data)
    hub = start_traefik_hub(data, config_path)
    yield hub
    discard_traefik_hub(hub, config_path)


def in_thread(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` on its own loop: Playwright's sync API keeps a loop in this thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def kernel_round_trip(base: str, token: str, code: str) -> str:
    """Start a kernel in the server at ``base`` and run ``code`` over its websocket (through
    the proxy); return its stdout."""
    headers = {"Authorization": f"token {token}"}
    resp = await AsyncHTTPClient().fetch(
        f"{base}/api/kernels", method="POST", body="{}", headers=headers
    )
    kernel = json.loads(resp.body)["id"]
    ws = await websocket_connect(
        HTTPRequest(
            base.replace("http", "ws", 1) + f"/api/kernels/{kernel}/channels", headers=headers
        )
    )
    msg_id = uuid.uuid4().hex
    ws.write_message(
        json.dumps(
            {
                "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": "admin",
                           "session": uuid.uuid4().hex, "version": "5.3", "date": ""},
                "parent_header": {}, "metadata": {}, "channel": "shell",
                "content": {"code": code, "silent": False, "store_history": False,
                            "user_expressions": {}, "allow_stdin": False, "stop_on_error": True},
            }
        )
    )  # fmt: skip
    out: list[str] = []

    async def collect() -> None:
        while True:
            msg = await ws.read_message()
            assert msg is not None, "the kernel websocket closed"
            reply = json.loads(msg)
            if reply.get("parent_header", {}).get("msg_id") != msg_id:
                continue
            kind, content = reply.get("msg_type"), reply.get("content", {})
            if kind == "stream":
                out.append(content["text"])
            elif kind == "status" and content["execution_state"] == "idle":
                return

    try:
        await asyncio.wait_for(collect(), 120)
    finally:
        ws.close()
    return "".join(out)


async def terminal_round_trip(base: str, token: str, text: str) -> str:
    """Open a terminal in the server at ``base`` and echo ``text`` over its websocket."""
    headers = {"Authorization": f"token {token}"}
    resp = await AsyncHTTPClient().fetch(
        f"{base}/api/terminals", method="POST", body="{}", headers=headers
    )
    name = json.loads(resp.body)["name"]
    ws = await websocket_connect(
        HTTPRequest(base.replace("http", "ws", 1) + f"/terminals/websocket/{name}", headers=headers)
    )
    seen = ""

    async def collect() -> None:
        nonlocal seen
        while text not in seen.replace("\r\n", "\n").split("echo ", 1)[-1]:
            msg = await ws.read_message()
            assert msg is not None, "the terminal websocket closed"
            kind, *rest = json.loads(msg)
            if kind == "stdout":
                seen += rest[0]

    try:
        ws.write_message(json.dumps(["stdin", f"echo {text[:4]}''{text[4:]}\r"]))
        await asyncio.wait_for(collect(), 60)
    finally:
        ws.close()
    return seen


@pytest.mark.browser
def test_every_flow_goes_through_traefik(hub, browser):
    pid = traefik_pid(hub)
    # Traefik's files sit in the hub's private folder, readable by the hub alone
    for name in ("traefik.toml", "traefik-routes.toml"):
        mode = stat.S_IMODE((hub.data / "hub" / name).stat().st_mode)
        assert mode == 0o600, (name, oct(mode))
    assert stat.S_IMODE((hub.data / "hub").stat().st_mode) == 0o700
    # the static config holds no credentials (the API's hash is in the 0600 routes file)
    assert "basicAuth" not in (hub.data / "hub" / "traefik.toml").read_text()

    page = browser.new_context(viewport={"width": 1280, "height": 800}).new_page()
    sockets: list[str] = []
    page.on("websocket", lambda ws: sockets.append(ws.url))
    log_in(page, hub, "admin", ADMIN_PASSWORD, next_url="/hub/home")
    token = api_token(page, hub, "admin")
    admin = HubClient(hub, token=token)
    admin.spawn(profile="cpu-small")
    admin.wait_ready(timeout=180)
    base = f"{hub.url}/user/admin"

    # JupyterLab in Chromium, through traefik (its assets, settings, and RTC websockets)
    page.goto(f"{base}/lab")
    try:
        page.locator("#jp-main-dock-panel").wait_for(timeout=120_000)
        page.locator(".jp-LauncherCard").first.wait_for(timeout=120_000)
    except Exception:
        screenshot(page, "traefik-lab")
        raise

    # a notebook in a sub-folder, with '#' in its name, opened in JupyterLab (RTC on)
    r = admin.put("/user/admin/api/contents/sub%20dir", json={"type": "directory"})
    assert r.status_code in (200, 201), r.text
    r = admin.put(
        "/user/admin/api/contents/sub%20dir/a%23b.ipynb",
        json={"type": "notebook", "content": {"cells": [CELL], "metadata": {}, "nbformat": 4,
                                              "nbformat_minor": 5}},
    )  # fmt: skip
    assert r.status_code in (200, 201), r.text
    # its path as jupyter-collaboration sends it (encodeURIComponent: %2F, %23) gets through
    r = admin.get("/user/admin/api/contents/sub%20dir%2Fa%23b.ipynb?content=0")
    assert r.status_code == 200, r.text
    assert r.json()["path"] == "sub dir/a#b.ipynb"
    page.goto(f"{base}/lab/tree/sub%20dir/a%23b.ipynb")
    try:
        # the cell's text comes from the shared document, over the collaboration websocket
        page.locator(".jp-Notebook .jp-Cell", has_text=CELL_TEXT).wait_for(timeout=120_000)
    except Exception:
        screenshot(page, "traefik-notebook")
        raise

    assert any("/api/collaboration/room/" in url for url in sockets), sockets

    # websockets through traefik: a kernel and a terminal
    out = in_thread(kernel_round_trip(base, token, "print(6 * 7)"))
    assert out.strip() == "42"
    assert "hello-traefik" in in_thread(terminal_round_trip(base, token, "hello-traefik"))

    # a named server gets its own route
    admin.spawn("second", profile="cpu-small")
    admin.wait_ready("second", timeout=180)
    assert poll(lambda: admin.answers("/user/admin/second/api/status"), 60, "named server")

    # the models service's route, with a hub token
    r = admin.post("/services/models/v2/models/iris/predict", json={"records": [ROW]})
    assert r.status_code == 200, r.text
    assert "setosa" in r.text
    r = requests.post(
        f"{hub.url}/services/models/v2/models/iris/predict",
        json={"records": [ROW]},
        headers={"Authorization": "token not-a-token"},
        timeout=60,
    )
    assert r.status_code in (401, 403), r.text

    # a stop removes the routes: the hub answers for the server's URLs again
    admin.stop("second")
    admin.stop()
    assert "/user/admin/" not in (hub.data / "hub" / "traefik-routes.toml").read_text()
    assert admin.get("/user/admin/api/status", allow_redirects=False).status_code != 200
    assert traefik_pid(hub) == pid  # the one traefik served all of it


def test_routes_come_back_after_a_hub_restart():
    data, config_path = prepare_hub("traefik-restart", traefik_config())
    # fixed, as in a deployment: the server that survives keeps calling the hub here
    hub_api = f"--JupyterHub.hub_bind_url=http://127.0.0.1:{free_port()}"
    hub = start_traefik_hub(data, config_path, hub_api)
    try:
        admin = HubClient(hub)
        admin.spawn(profile="cpu-small")
        pid = admin.wait_ready(timeout=180)["state"]["pid"]
        assert admin.answers("/user/admin/api/status")
        old_traefik = traefik_pid(hub)

        stop_hub(hub)
        assert hub.proc.returncode != -signal.SIGKILL, "the hub did not stop within 30 s"
        # the hub stopped its traefik and removed its routes file; the server kept running
        assert (
            not Path(f"/proc/{old_traefik}").exists()
            or b"Z" in Path(f"/proc/{old_traefik}/stat").read_bytes().rsplit(b")", 1)[1][:3]
        )
        assert not (data / "hub" / "traefik-routes.toml").exists()

        hub = admin.hub = start_traefik_hub(data, config_path, hub_api)
        assert traefik_pid(hub) != old_traefik
        server = admin.wait_ready(timeout=120)
        assert server["state"]["pid"] == pid
        assert poll(lambda: admin.answers("/user/admin/api/status"), 120, "the server's API")
        routes = (data / "hub" / "traefik-routes.toml").read_text()
        assert "/user/admin/" in routes
    finally:
        discard_traefik_hub(hub, config_path)
