"""What the end-to-end tests share besides the hub and the lab themselves: polling real
processes until something holds, and a user's REST client for a real hub's API and the
platform service's."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, TypeVar

import requests

from .conftest import ADMIN_PASSWORD, RealHub

T = TypeVar("T")

HUB_API = "/hub/api"
SERVICE_API = "/services/mlfactory/api"


def poll(predicate: Callable[[], T], timeout: float, what: str | Callable[[], str]) -> T:
    """Call ``predicate`` until it returns something truthy, and return that; fail after
    ``timeout`` seconds, saying ``what`` (or what ``what()`` says then) was awaited."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {timeout}s: {what() if callable(what) else what}")
        time.sleep(0.2)  # polling real processes (hub, proxy, servers), not a clock under test


def rest_token(hub: RealHub, user: str = "admin", password: str = ADMIN_PASSWORD) -> str:
    """A 30-minute hub API token for ``user``, asked for through the REST API with the
    user's password (JupyterHub's ``auth`` body), no browser."""
    r = requests.post(
        f"{hub.url}{HUB_API}/users/{user}/tokens",
        json={"auth": {"username": user, "password": password}, "expires_in": 1800},
        timeout=60,
    )
    r.raise_for_status()
    return r.json()["token"]


class HubClient:
    """One user's REST client on a real hub: the hub's API and the platform service's, with
    the user's API token (asked for with their password unless ``token`` is given).

    ``hub`` may be replaced by a restarted hub on the same data: the token is in its
    database."""

    def __init__(
        self,
        hub: RealHub,
        user: str = "admin",
        password: str = ADMIN_PASSWORD,
        *,
        token: str | None = None,
    ) -> None:
        self.hub = hub
        self.user = user
        self.token = token or rest_token(hub, user, password)
        self.headers = {"Authorization": f"token {self.token}"}

    # --- plain requests, answers unchecked; ``path`` starts after the hub's address ---

    def request(
        self, method: str, path: str, *, timeout: float = 60, **kw: Any
    ) -> requests.Response:
        return requests.request(
            method, f"{self.hub.url}{path}", headers=self.headers, timeout=timeout, **kw
        )

    def get(self, path: str, **kw: Any) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        return self.request("POST", path, **kw)

    def put(self, path: str, **kw: Any) -> requests.Response:
        return self.request("PUT", path, **kw)

    def delete(self, path: str, **kw: Any) -> requests.Response:
        return self.request("DELETE", path, **kw)

    def answers(self, path: str) -> bool:
        """``path`` answers 200 now (False while the proxy or the hub is away)."""
        try:
            return self.get(path, timeout=10).status_code == 200
        except requests.RequestException:
            return False

    # --- JSON: GETs that must answer 200 ---

    def hub_json(self, path: str) -> Any:
        """``GET /hub/api<path>``'s JSON."""
        r = self.get(f"{HUB_API}{path}")
        assert r.status_code == 200, r.text
        return r.json()

    def service_json(self, path: str) -> Any:
        """``GET /services/mlfactory/api<path>``'s JSON."""
        r = self.get(f"{SERVICE_API}{path}")
        assert r.status_code == 200, r.text
        return r.json()

    # --- users, tokens and servers on the hub (``user`` defaults to the client's own) ---

    def new_token(self, user: str | None = None, **body: Any) -> str:
        """A new API token for ``user`` (default scopes: all of the user's); ``body`` adds
        JupyterHub's token fields (``expires_in``, ``scopes``...)."""
        r = self.post(
            f"{HUB_API}/users/{user or self.user}/tokens", json={"note": "e2e test", **body}
        )
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def server_path(self, name: str = "", user: str | None = None) -> str:
        """The hub API path of a server: ``name`` "" is the user's default server."""
        base = f"{HUB_API}/users/{user or self.user}"
        return f"{base}/servers/{name}" if name else f"{base}/server"

    def servers(self, user: str | None = None) -> dict[str, dict]:
        """The user's servers, by name, as the hub reports them."""
        return self.hub_json(f"/users/{user or self.user}")["servers"]

    def ready(self, name: str = "", user: str | None = None) -> dict | None:
        """The server's model if it is ready now, else None."""
        server = self.servers(user).get(name) or {}
        return server if server.get("ready") else None

    def start(
        self, name: str = "", body: dict | None = None, user: str | None = None
    ) -> requests.Response:
        """Ask the hub to start a server with ``body`` (none: the user's saved or default
        choice); the answer, unchecked."""
        return self.post(self.server_path(name, user), json=body, timeout=120)

    def spawn(self, name: str = "", profile: str = "cpu-small", user: str | None = None) -> None:
        """Start a server with ``profile``: the hub must accept the request."""
        r = self.start(name, {"profile": profile}, user)
        assert r.status_code in (201, 202), r.text

    def stop(self, name: str = "", timeout: float = 120, user: str | None = None) -> None:
        """Stop a server: the hub must accept the request, and forget the server within
        ``timeout`` seconds."""
        r = self.delete(self.server_path(name, user), timeout=120)
        assert r.status_code in (202, 204), r.text
        poll(lambda: name not in self.servers(user), timeout, f"server {name!r} stopped")

    def wait_ready(self, name: str = "", timeout: float = 120, user: str | None = None) -> dict:
        """The server's model, once the hub reports it ready."""
        return poll(
            lambda: self.ready(name, user),
            timeout,
            lambda: f"{user or self.user}'s server {name!r} ready:\n{self.hub.log()[-3000:]}",
        )
