"""The server's identity keeper (``server_ext/identity.py``) and the kernel's side of it
(``mlfactory.data`` reading ``MLFACTORY_IDENTITY_FILE``), against a small HTTP endpoint
that records what the keeper asks and answers like the platform service's identity routes,
or fails on purpose (the faults). The real service and hub: tests/e2e/test_identity_rotation.py.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import stat
from dataclasses import dataclass, field

import pytest
from mlfactory.data import DataAccessDenied, DataServiceUnavailable, ServiceCredentials
from mlfactory.server.identity import IdentityKeeper
from mlfactory.server.identity_schedule import next_attempt
from mlfactory.server.service_client import Target
from tornado import web
from tornado.httpserver import HTTPServer

from ..ports import free_port

PREFIX = "/services/mlfactory"


@dataclass
class Recorder:
    """What the stand-in was asked, and whether it fails now (503, as a service whose hub
    is down answers)."""

    minted: int = 0
    failing: bool = False
    calls: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, token
    clock: list[float] = field(default_factory=lambda: [1000.0])


def make_app(rec: Recorder) -> web.Application:
    class Base(web.RequestHandler):
        def prepare(self) -> None:
            token = self.request.headers.get("Authorization", "").partition(" ")[2]
            self.request_token = token
            rec.calls.append((self.request.method, self.request.path, token))
            if rec.failing:
                self.set_status(503)
                self.finish(json.dumps({"error": "The hub cannot be reached"}))

        def check_xsrf_cookie(self) -> None:
            pass

    class Mint(Base):
        def post(self) -> None:
            rec.minted += 1
            now = rec.clock[0]
            self.set_status(201)
            self.finish(
                {
                    "token": f"identity-{rec.minted}",
                    "token_id": f"a{rec.minted}",
                    "issued_at": now,
                    "rotate_at": now + 900,
                    "expires_at": now + 1800,
                    "overlap": 60,
                }
            )

        def delete(self) -> None:
            self.finish({"revoked": 2})

    class Revoke(Base):
        def delete(self, token_id: str) -> None:
            self.finish({"revoked": 1})

    class Credentials(Base):
        def post(self, store: str) -> None:
            self.set_status(201)
            self.finish(
                {
                    "credentials": {"user": self.request_token},
                    "issued_at": 0,
                    "expires_at": 3600,
                    "ttl": 3600,
                }
            )

    return web.Application(
        [
            (f"{PREFIX}/api/identity", Mint),
            (f"{PREFIX}/api/identity/(a[0-9]+)", Revoke),
            (f"{PREFIX}/api/data/([a-z]+)/credentials", Credentials),
        ]
    )


@pytest.fixture
def service():
    rec = Recorder()
    port = free_port()
    server = HTTPServer(make_app(rec))
    server.listen(port, "127.0.0.1")
    yield rec, f"http://127.0.0.1:{port}{PREFIX}"
    server.stop()


class Sleeps:
    """An injected ``sleep``: records each wait and returns at once (time is not slept on)."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def keeper_for(url: str, path, rec: Recorder, sleeps: Sleeps) -> IdentityKeeper:
    return IdentityKeeper(
        Target(url, "server-token"), path, clock=lambda: rec.clock[0], sleep=sleeps
    )


def read(path) -> dict:
    return json.loads(path.read_text())


async def settle(keeper) -> None:
    """Wait for the revocations the keeper scheduled (each an HTTP call: yielding to the
    loop a few times is not enough on a busy machine)."""
    if keeper._revokes:
        await asyncio.wait(set(keeper._revokes), timeout=60)


async def test_each_rotation_replaces_the_file_and_revokes_the_previous(service, tmp_path):
    rec, url = service
    sleeps = Sleeps()
    path = tmp_path / "identity.json"
    keeper = keeper_for(url, path, rec, sleeps)

    assert await keeper.rotate_once()
    assert read(path)["token"] == "identity-1"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert rec.calls == [("POST", f"{PREFIX}/api/identity", "server-token")]
    # the next one is due at the time the service named, on this clock
    assert next_attempt(rec.clock[0], keeper.held, keeper.failures) == 1900.0

    rec.clock[0] = 1900.0
    assert await keeper.rotate_once()
    await settle(keeper)
    assert read(path)["token"] == "identity-2"
    # the replaced one is revoked after the overlap, with the server's own token
    assert 60.0 in sleeps.waits
    assert ("DELETE", f"{PREFIX}/api/identity/a1", "server-token") in rec.calls


async def test_a_service_down_keeps_the_current_identity_and_backs_off(service, tmp_path, caplog):
    rec, url = service
    path = tmp_path / "identity.json"
    keeper = keeper_for(url, path, rec, Sleeps())
    assert await keeper.rotate_once()

    rec.failing, rec.clock[0] = True, 1900.0
    with caplog.at_level(logging.WARNING, "mlfactory.server.identity"):
        assert not await keeper.rotate_once()
        assert not await keeper.rotate_once()
    assert read(path)["token"] == "identity-1"  # still in use, until it expires
    assert keeper.failures == 2
    assert next_attempt(rec.clock[0], keeper.held, keeper.failures) == 1910.0
    assert "keeps its current identity, valid for 900s" in caplog.text
    assert "Retrying in 10s" in caplog.text

    rec.failing = False  # back: the next try works and the backoff resets
    assert await keeper.rotate_once()
    assert read(path)["token"] == "identity-2" and keeper.failures == 0


async def test_a_service_that_cannot_be_reached_leaves_no_identity(tmp_path, caplog):
    rec = Recorder()
    path = tmp_path / "identity.json"
    keeper = keeper_for(f"http://127.0.0.1:{free_port()}{PREFIX}", path, rec, Sleeps())
    with caplog.at_level(logging.WARNING, "mlfactory.server.identity"):
        assert not await keeper.rotate_once()
    assert not path.exists() and keeper.failures == 1
    assert "no identity yet" in caplog.text


async def test_the_loop_rotates_on_schedule_and_stop_revokes_all(service, tmp_path):
    rec, url = service
    sleeps = Sleeps()
    path = tmp_path / "identity.json"
    keeper = keeper_for(url, path, rec, sleeps)

    async def advance(seconds: float) -> None:
        sleeps.waits.append(seconds)
        rec.clock[0] += seconds
        if rec.minted >= 3:
            await asyncio.Event().wait()  # stay here until stopped

    keeper.sleep = advance
    keeper.start()
    for _ in range(200):
        await asyncio.sleep(0.01)
        if rec.minted >= 3:
            break
    assert rec.minted == 3
    assert sleeps.waits.count(900.0) >= 2  # one rotation period between mints
    await keeper.stop()
    assert ("DELETE", f"{PREFIX}/api/identity", "server-token") in rec.calls
    assert not path.exists()


async def test_a_kernel_reads_the_current_identity_at_each_call(service, tmp_path, monkeypatch):
    rec, url = service
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"token": "identity-1", "token_id": "a1", "expires_at": 5000}))
    monkeypatch.setenv("MLFACTORY_IDENTITY_FILE", str(path))
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "server-token")
    creds = ServiceCredentials("warehouse", service_url=url, clock=lambda: rec.clock[0])

    first = await asyncio.to_thread(creds._fetch)
    assert first["credentials"]["user"] == "identity-1"
    path.write_text(json.dumps({"token": "identity-2", "token_id": "a2", "expires_at": 5000}))
    again = await asyncio.to_thread(creds._fetch)
    assert again["credentials"]["user"] == "identity-2"  # same object, no restart
    # the server's own token is never what it sends
    assert all(token != "server-token" for _, _, token in rec.calls)


async def test_an_expired_or_missing_identity_says_what_to_do(service, tmp_path, monkeypatch):
    rec, url = service
    path = tmp_path / "identity.json"
    path.write_text(json.dumps({"token": "identity-1", "token_id": "a1", "expires_at": 900}))
    monkeypatch.setenv("MLFACTORY_IDENTITY_FILE", str(path))
    creds = ServiceCredentials("warehouse", service_url=url, clock=lambda: rec.clock[0])
    with pytest.raises(DataAccessDenied, match="expired at .*restart your server"):
        await asyncio.to_thread(creds._fetch)
    assert rec.calls == []  # refused here, without asking

    # none yet (the server is starting): it waits a bounded while for the first, then says so
    path.unlink()
    waits: list[float] = []

    def sleep(seconds: float) -> None:
        waits.append(seconds)
        rec.clock[0] += seconds

    creds = ServiceCredentials(
        "warehouse", service_url=url, clock=lambda: rec.clock[0], sleep=sleep
    )
    with pytest.raises(DataServiceUnavailable, match="no data identity yet"):
        await asyncio.to_thread(creds._fetch)
    assert 25 <= sum(waits) <= 35 and rec.calls == []


async def test_the_first_identity_is_waited_for(service, tmp_path, monkeypatch):
    rec, url = service
    path = tmp_path / "identity.json"
    monkeypatch.setenv("MLFACTORY_IDENTITY_FILE", str(path))

    def sleep(seconds: float) -> None:  # the keeper writes it meanwhile
        rec.clock[0] += seconds
        path.write_text(json.dumps({"token": "identity-1", "token_id": "a1", "expires_at": 5e3}))

    creds = ServiceCredentials(
        "warehouse", service_url=url, clock=lambda: rec.clock[0], sleep=sleep
    )
    answer = await asyncio.to_thread(creds._fetch)
    assert answer["credentials"]["user"] == "identity-1"
