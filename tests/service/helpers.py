"""What the platform service's tests share besides fixtures: the secret and prefix the test
service runs with, the injected clock, and platform configs derived from the shipped one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from mlfactory.hub.platform_config import PACKAGED_CONFIG, PlatformConfig
from mlfactory.service.accounting import Accountant
from mlfactory.service.culler import Culler
from mlfactory.service.db import make_engine, upgrade
from mlfactory.service.store import Store
from sqlalchemy import text
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from ..fakehub import HubState

SECRET = "test-service-secret"
PREFIX = "/services/mlfactory/"
T0 = datetime(2026, 11, 10, 12, 0, tzinfo=UTC).timestamp()


def empty_database(request: Any, tmp_path: Path) -> str:
    """The URL of an empty database on the backend of a ``params=["sqlite", "postgresql"]``
    fixture: a new SQLite file, or the session's PostgreSQL database emptied."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'platform.sqlite'}"
    url = request.getfixturevalue("postgresql_url")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    return url


class Clock:
    """Injected time: tests move it instead of sleeping."""

    def __init__(self, t: float = T0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds

    def set(self, t: float) -> None:
        self.t = t


def service_store(db_url: str) -> Iterator[Store]:
    """The service's store on a database migrated to the newest schema (a fixture's body)."""
    engine = make_engine(db_url)
    upgrade(engine)
    yield Store(engine)
    engine.dispose()


def platform_with(**changes: Any) -> PlatformConfig:
    """The shipped example with top-level keys replaced (``changes`` are plain YAML data)."""
    import yaml
    from mlfactory.hub.platform_config import parse_platform_config

    data = yaml.safe_load(PACKAGED_CONFIG.read_text())
    data.update(changes)
    return parse_platform_config(data, "test.yaml")


@dataclass
class Service:
    url: str
    accountant: Accountant
    hub: HubState
    culler: Culler

    async def call(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        secret: str | None = None,
        body: Any = None,
        raw: bytes | None = None,
    ) -> tuple[int, Any, dict]:
        headers = {}
        if token:
            headers["Authorization"] = f"token {token}"
        if secret:
            headers["Authorization"] = f"secret {secret}"
        data = raw if raw is not None else (None if body is None else json.dumps(body))
        if data is None and method in ("POST", "PUT"):
            data = b""
        req = HTTPRequest(
            self.url + path,
            method=method,
            headers=headers,
            body=data,
            allow_nonstandard_methods=True,
            follow_redirects=False,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req)
        except HTTPClientError as e:
            resp = e.response
            assert resp is not None, e
        text = resp.body.decode() if resp.body else ""
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = text
        return resp.code, payload, dict(resp.headers)
