"""The stand-in hub (``tests/fakehub.py``) answers as a real JupyterHub does.

The same users, groups and servers are made in a real JupyterHub (pytest-jupyterhub's MockHub:
JupyterHub 6's own app, REST handlers and database, the real proxy, single-user processes
from its mock spawner) and in the stand-in. The same requests go to both: the ones the
platform service and jupyterhub-idle-culler make, and their edges (pages over the cap, bad
arguments, missing users and servers, tokens the hub refuses). Status codes, content types
and the JSON's shape must match: keys, types, pagination blocks, names and the flags the
service reads. Values that differ from one run to the next (timestamps, ids, URLs with the
hub's host and prefix, the spawner's state) are compared by type only.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from typing import Any
from urllib.parse import parse_qsl, urlparse

import pytest
from jupyterhub.tests.mocking import MockSpawner
from mlfactory.hub.hubconfig import SERVICE_SCOPES
from mlfactory.service.hubapi import HubAPI
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .fakehub import PAGINATION, HubState, serve_fake_hub

SERVICE_TOKEN = "fidelity-service-token"
ADMIN_TOKEN = "fidelity-admin-token"  # sets the real hub up; the stand-in is set up directly
PAGE_DEFAULT, PAGE_MAX = 2, 3  # small pages: four users fill two of them
# alice runs her default server; bob named ones: one he stopped, one slow to stop ("held");
# carol and dave none
USERS = {"alice": ("team-a",), "bob": ("team-a", "team-b"), "carol": ("team-b",), "dave": ()}
ADMINS = {"dave"}
GROUPS = {"team-a": ["alice", "bob"], "team-b": ["bob", "carol"]}
RUNNING = [("alice", ""), ("bob", "gpu"), ("bob", "old"), ("bob", "held")]
HELD = "held"


class HeldStopSpawner(MockSpawner):
    """MockHub's spawner, except that the server named ``held`` stops only once the test
    sets ``release``: its DELETE outlasts the hub's ``slow_stop_timeout`` (10 s) and the hub
    answers 202, leaving it ``pending: "stop"``. Every other server stops at once (204)."""

    release: asyncio.Event | None = None

    async def stop(self, now=False):
        if self.name == HELD and HeldStopSpawner.release is not None:
            await HeldStopSpawner.release.wait()
        return await super().stop(now=now)


# Compared by value: what the service and the culler act on. Everything else: by type.
EXACT = {
    "name", "admin", "groups", "users", "roles", "kind", "ready", "pending", "stopped",
    "offset", "limit", "total", "full_name", "display_name", "status", "properties",
}  # fmt: skip
SPAWNER_OWNED = {"state", "user_options"}  # a dict (or null) whose content is the spawner's


def shape(value: Any, key: str | None = None) -> Any:
    """What of an answer must match between the hubs (see EXACT and SPAWNER_OWNED)."""
    if key in SPAWNER_OWNED:
        return "spawner's" if value is None or isinstance(value, dict) else repr(value)
    if key == "next" and isinstance(value, dict):
        url = urlparse(value["url"])  # the hub's own URL: only the endpoint and query match
        where = (url.path.rsplit("/hub/api", 1)[-1], sorted(parse_qsl(url.query, True)))
        return {"offset": value["offset"], "limit": value["limit"], "url": where}
    if key == "roles":
        return sorted(value)  # in the order the hub's database returns them
    if key == "scopes":
        return sorted({type(s).__name__ for s in value})  # each hub its own, but strings
    if key in EXACT:
        return value
    if isinstance(value, dict):
        return {k: shape(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [shape(v) for v in value]
    return type(value).__name__


async def call(
    api: str, method: str, path: str, token: str | None, accept: str | None = None, body=None
) -> dict:
    headers = {"Authorization": f"token {token}"} if token else {}
    if accept:
        headers["Accept"] = accept
    req = HTTPRequest(
        api + path,
        method=method,
        headers=headers,
        body=None if body is None else json.dumps(body),
        allow_nonstandard_methods=True,
    )
    try:
        resp = await AsyncHTTPClient().fetch(req)
    except HTTPClientError as e:
        resp = e.response
        assert resp is not None, e
    content_type = resp.headers.get("Content-Type")
    try:
        body = json.loads(resp.body) if resp.body else None
    except ValueError:  # JupyterHub answers JSON, errors included: shown as the difference
        body = resp.body.decode(errors="replace")[:80]
    return {
        "status": resp.code,
        "content_type": content_type and content_type.split(";")[0],
        "body": body,
    }


# (method, path, accept, whose token, body); "user": alice's own token
READS = [
    ("GET", "/users", None, "service", None),
    ("GET", "/users", PAGINATION, "service", None),
    ("GET", "/users?offset=2", PAGINATION, "service", None),
    ("GET", "/users?offset=2&limit=2", None, "service", None),
    ("GET", "/users?offset=10", PAGINATION, "service", None),
    ("GET", "/users?limit=1000", PAGINATION, "service", None),
    ("GET", "/users?limit=1000", None, "service", None),
    ("GET", "/users?limit=0", PAGINATION, "service", None),
    ("GET", "/users?limit=-2&offset=-1", PAGINATION, "service", None),
    ("GET", "/users?limit=many", PAGINATION, "service", None),
    ("GET", "/users?offset=x", None, "service", None),
    ("GET", "/users?state=active", PAGINATION, "service", None),
    ("GET", "/users?state=active", None, "service", None),
    ("GET", "/users?state=ready&limit=1", PAGINATION, "service", None),
    ("GET", "/users?state=inactive", PAGINATION, "service", None),
    ("GET", "/users?state=sleeping", PAGINATION, "service", None),
    ("GET", "/users?include_stopped_servers=1&limit=3", PAGINATION, "service", None),
    ("GET", "/users?include_stopped_servers=1&offset=3", PAGINATION, "service", None),
    ("GET", "/users?include_stopped_servers=0&state=active", PAGINATION, "service", None),
    ("GET", "/users?include_stopped_servers&state=active", PAGINATION, "service", None),
    ("GET", "/users/bob", None, "service", None),
    ("GET", "/users/bob?include_stopped_servers=1", None, "service", None),
    ("GET", "/users/dave", None, "service", None),
    ("GET", "/users/nobody", None, "service", None),
    ("GET", "/groups", None, "service", None),
    ("GET", "/groups", PAGINATION, "service", None),
    ("GET", "/groups?limit=1", PAGINATION, "service", None),
    ("GET", "/groups?offset=1&limit=1", PAGINATION, "service", None),
    ("GET", "/groups?limit=1", None, "service", None),
    ("GET", "/", None, None, None),
    # who may ask
    ("GET", "/user", None, "user", None),
    ("GET", "/user", None, "service", None),
    ("GET", "/user", None, "bad", None),
    ("GET", "/user", None, None, None),
    ("GET", "/users", PAGINATION, None, None),
    ("GET", "/users", PAGINATION, "bad", None),
    ("GET", "/users", PAGINATION, "user", None),
    ("GET", "/groups", PAGINATION, "bad", None),
    ("GET", "/users/bob", None, None, None),
    ("DELETE", "/users/bob/servers/gpu", None, None, None),
    ("DELETE", "/users/bob/servers/gpu", None, "bad", None),
]
# in this order, each changing both hubs alike
CHANGES = [
    ("DELETE", "/users/carol/server", None, "service", None),  # never started
    ("GET", "/users/carol?include_stopped_servers=1", None, "service", None),
    ("DELETE", "/users/carol/servers/nope", None, "service", None),
    ("DELETE", "/users/nobody/server", None, "service", None),
    ("DELETE", "/users/nobody/servers/gpu", None, "service", None),
    ("DELETE", "/users/carol/server", None, "service", {"remove": True}),
    ("DELETE", "/users/bob/servers/old", None, "service", None),  # stopped already
    ("DELETE", "/users/bob/servers/old", None, "service", {"remove": True}),
    ("GET", "/users/bob?include_stopped_servers=1", None, "service", None),
    ("DELETE", "/users/bob/servers/old", None, "service", None),  # removed: unknown now
    ("DELETE", "/users/alice/server", None, "service", None),  # running: stopped at once, 204
    # the spawner is slow to stop: 202, listed stopping (not ready: out of state=ready), and
    # a second DELETE while it stops answers 202 again
    ("DELETE", "/users/bob/servers/held", None, "service", None),
    ("GET", "/users/bob", None, "service", None),
    ("GET", "/users?state=ready", PAGINATION, "service", None),
    ("DELETE", "/users/bob/servers/held", None, "service", None),
    ("GET", "/users?state=active", PAGINATION, "service", None),
    ("GET", "/users?state=inactive", PAGINATION, "service", None),
    ("GET", "/users?include_stopped_servers=1&limit=3", PAGINATION, "service", None),
    ("GET", "/users/alice?include_stopped_servers=1", None, "service", None),
]


def server_path(user: str, server: str) -> str:
    return f"/users/{user}/servers/{server}" if server else f"/users/{user}/server"


def real_hub_config(mockhub_config: dict) -> dict:
    config = copy.deepcopy(mockhub_config)
    config["JupyterHub"].update(
        allow_named_servers=True,
        api_page_default_limit=PAGE_DEFAULT,
        api_page_max_limit=PAGE_MAX,
        services=[
            {"name": "mlfactory", "api_token": SERVICE_TOKEN},
            {"name": "fidelity-setup", "api_token": ADMIN_TOKEN},
        ],
        load_roles=[
            # the platform service's role, as hubconfig.apply_platform_service grants it
            {"name": "mlfactory-service", "scopes": SERVICE_SCOPES, "services": ["mlfactory"]},
            {"name": "admin", "services": ["fidelity-setup"]},
            {"name": "user", "scopes": ["self", "access:services!service=mlfactory"]},
        ],
    )
    config["JupyterHub"]["spawner_class"] = HeldStopSpawner
    # a server that does not end at its SIGINT would make the hub wait LocalProcessSpawner's
    # 10 s interrupt_timeout, past the hub's 10 s slow_stop_timeout: a 202 for a stop the
    # scenario means to be at once (seen in CI); only "held" is to be slow
    config["Spawner"] = {
        "start_timeout": 60,
        "http_timeout": 60,
        "interrupt_timeout": 1,
        "term_timeout": 1,
    }
    return config


async def set_up_real_hub(api: str) -> str:
    """The scenario in the real hub through its REST API; returns alice's token."""

    async def admin(method: str, path: str, body: Any = None) -> dict:
        answer = await call(api, method, path, ADMIN_TOKEN, body=body)
        assert answer["status"] in (200, 201, 202, 204), (method, path, answer)
        return answer

    for name in ("admin", "user"):  # MockHub's own users: the scenario starts without any
        if (await call(api, "GET", f"/users/{name}", ADMIN_TOKEN))["status"] == 200:
            await admin("DELETE", f"/users/{name}")
    for name in USERS:
        await admin("POST", "/users", {"usernames": [name], "admin": name in ADMINS})
    await admin("POST", "/groups", {"groups": list(GROUPS)})
    for group, members in GROUPS.items():
        await admin("POST", f"/groups/{group}/users", {"users": members})
    for user, server in RUNNING:
        await admin("POST", server_path(user, server))
    deadline = time.monotonic() + 60
    while True:  # real processes: poll until the hub reports each of them ready
        models = [(await admin("GET", f"/users/{u}"))["body"] for u in ("alice", "bob")]
        ready = {(m["name"], n) for m in models for n, s in m["servers"].items() if s["ready"]}
        if ready >= set(RUNNING):
            break
        assert time.monotonic() < deadline, f"servers not ready within 60 s: {ready}"
        await asyncio.sleep(0.2)
    await admin("DELETE", "/users/bob/servers/old")
    # a loaded machine answers 202 (stop pending): wait until the hub says it is stopped
    deadline = time.monotonic() + 60
    while "old" in (await admin("GET", "/users/bob"))["body"]["servers"]:
        assert time.monotonic() < deadline, "bob/old not stopped within 60 s"
        await asyncio.sleep(0.2)
    token = await admin(
        "POST", "/users/alice/tokens", {"scopes": ["access:services!service=mlfactory"]}
    )
    return token["body"]["token"]


async def set_up_fake_hub(api: str, state: HubState) -> str:
    """The same scenario in the stand-in, the way tests set it up; returns alice's token."""
    tokens = {
        name: state.add_user(name, groups=groups, admin=name in ADMINS)
        for name, groups in USERS.items()
    }
    started = time.strftime("%Y-%m-%dT%H:%M:%S.000000Z", time.gmtime())
    for user, server in RUNNING:
        state.run_server(user, server, None, started)
    state.slow_stop.add(("bob", HELD))
    stop = await call(api, "DELETE", "/users/bob/servers/old", SERVICE_TOKEN)
    assert stop["status"] == 204, stop
    return tokens["alice"]


async def stop_all(api: str) -> None:
    """Leave no single-user process behind (the hub_app fixture does not stop them)."""
    for user, server in RUNNING:
        await call(api, "DELETE", server_path(user, server), ADMIN_TOKEN)


@pytest.fixture
async def hubs(hub_app, mockhub_config):
    """A real hub and the stand-in, with the same users, groups and servers: for each, the
    API URL and its tokens by owner (service; user: alice; bad: one it never gave)."""
    HeldStopSpawner.release = asyncio.Event()
    app = await hub_app(config=real_hub_config(mockhub_config))
    real_api = app.hub.url.rstrip("/") + "/api"
    state = HubState(
        page_default_limit=PAGE_DEFAULT, page_max_limit=PAGE_MAX, service_tokens={SERVICE_TOKEN}
    )
    fake_api, server = serve_fake_hub(state)
    try:
        real_user = await set_up_real_hub(real_api)
        fake_user = await set_up_fake_hub(fake_api, state)
        tokens = {"service": SERVICE_TOKEN, "bad": "a-token-nobody-gave", None: None}
        yield {
            "real": (real_api, {**tokens, "user": real_user}),
            "fake": (fake_api, {**tokens, "user": fake_user}),
        }
    finally:
        server.stop()
        HeldStopSpawner.release.set()
        await stop_all(real_api)


async def answers(hub: tuple[str, dict], requests: list) -> list:
    api, tokens = hub
    out = []
    for method, path, accept, whose, body in requests:
        answer = await call(api, method, path, tokens[whose], accept, body)
        out.append({**answer, "body": shape(answer["body"])})
    return out


def assert_same(requests: list, real: list, fake: list) -> None:
    differ = [
        f"{method} {path} (Accept: {accept}, token: {whose}, body: {body}):\n"
        f"  real hub:  {r}\n  stand-in:  {f}"
        for (method, path, accept, whose, body), r, f in zip(requests, real, fake, strict=True)
        if r != f
    ]
    assert not differ, "the stand-in hub answers unlike JupyterHub:\n" + "\n".join(differ)


async def test_the_stand_in_answers_like_a_real_hub(hubs):
    real = await answers(hubs["real"], READS)
    fake = await answers(hubs["fake"], READS)
    assert_same(READS, real, fake)
    # the answers the service acts on are not all empty or errors
    assert [a["status"] for a in real[:3]] == [200, 200, 200]

    real = await answers(hubs["real"], CHANGES)
    fake = await answers(hubs["fake"], CHANGES)
    assert_same(CHANGES, real, fake)


async def test_the_services_hub_client_reads_both_alike(hubs):
    """HubAPI walks the pages, reads users and stops servers the same way on both."""

    async def read(hub: tuple[str, dict]) -> dict:
        api = HubAPI(hub[0], SERVICE_TOKEN, page_size=2)
        everyone = [
            (u["name"], sorted(u["servers"])) async for u in api.users(include_stopped=True)
        ]
        running = [(u["name"], sorted(u["servers"])) async for u in api.users(state="active")]
        sightings, groups = await api.sightings()
        await api.stop_server("carol", "nope")  # a 404: taken as already gone
        return {
            "everyone": everyone,
            "running": running,
            "sightings": sorted((s.user, s.server_name, s.running) for s in sightings),
            "groups of the running": groups,
            "groups": [(g["name"], g["users"]) for g in await api.groups()],
            "bob": shape(await api.user("bob")),
            "nobody": await api.user("nobody"),
        }

    assert await read(hubs["real"]) == await read(hubs["fake"])
