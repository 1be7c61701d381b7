"""The platform service's client of the hub's REST API (its only way to reach the hub).

Pages through ``/users`` with a bounded page size, and needs only the scopes granted to the
service's role: list and read users, read servers and their state, stop servers.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .periods import parse_iso
from .reconcile import Sighting


class HubAPI:
    def __init__(self, url: str, token: str, page_size: int = 200, timeout: float = 20) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.page_size = page_size
        self.timeout = timeout
        self.client = AsyncHTTPClient()

    async def request(self, method: str, path: str, body: Any = None) -> Any:
        req = HTTPRequest(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}", "Accept": "application/jsonpage+json"},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=self.timeout,
        )
        resp = await self.client.fetch(req)
        return json.loads(resp.body) if resp.body else None

    async def users(self, state: str = "", include_stopped: bool = False) -> AsyncIterator[dict]:
        """Every user (with servers and their state), a page at a time."""
        offset = 0
        while True:
            query = {"offset": offset, "limit": self.page_size}
            if include_stopped:
                query["include_stopped_servers"] = "1"
            if state:
                query["state"] = state
            page = await self.request("GET", f"/users?{urlencode(query)}")
            items = page["items"] if isinstance(page, dict) else page
            for user in items:
                yield user
            nxt = (page.get("_pagination") or {}).get("next") if isinstance(page, dict) else None
            if not nxt or not items:
                return
            offset = nxt["offset"]

    async def groups(self) -> list[dict]:
        """Every group with its members."""
        out, offset = [], 0
        while True:
            page = await self.request("GET", f"/groups?offset={offset}&limit={self.page_size}")
            items = page["items"] if isinstance(page, dict) else page
            out.extend(items)
            nxt = (page.get("_pagination") or {}).get("next") if isinstance(page, dict) else None
            if not nxt or not items:
                return out
            offset = nxt["offset"]

    async def user(self, name: str) -> dict | None:
        try:
            return await self.request("GET", f"/users/{quote(name, safe='')}")
        except HTTPClientError as e:
            if e.code == 404:
                return None
            raise

    async def stop_server(self, user: str, server_name: str, remove: bool = False) -> None:
        path = f"/users/{quote(user, safe='')}/servers/{quote(server_name, safe='')}"
        try:
            await self.request("DELETE", path, {"remove": True} if remove else None)
        except HTTPClientError as e:
            if e.code not in (400, 404):  # already stopped or gone
                raise

    async def sightings(self) -> tuple[list[Sighting], dict[str, list[str]]]:
        """Running servers the hub knows of, and every active user's groups."""
        out, groups = [], {}
        async for user in self.users(state="active"):
            groups[user["name"]] = list(user.get("groups") or [])
            for name, server in (user.get("servers") or {}).items():
                s = sighting(user, name, server)
                if s is not None:
                    out.append(s)
        return out, groups


def sighting(user: dict, server_name: str, server: dict) -> Sighting | None:
    """The hub's record of a running (or starting) server as a ledger sighting.

    The price and resources come from the spawner's state (written by the spawner, never by
    the user); a server without them was started before accounting was on and is charged
    nothing, but still appears.
    """
    if not (server.get("ready") or server.get("pending") == "spawn"):
        return None
    ledger = ((server.get("state") or {}).get("mlfactory") or {}).get("ledger") or {}
    started = server.get("started")
    if not ledger.get("key"):
        # A spawn still starting saves its state only once it is up; the gate has already
        # opened its row under the spawner's key, so do not invent a second one here.
        if not started or not server.get("ready"):
            return None
        key = f"hub-{user['name']}-{server_name}-{int(parse_iso(started))}"
    else:
        key = ledger["key"]
    return Sighting(
        key=key[:80],
        user=user["name"],
        server_name=server_name,
        started=float(ledger.get("started") or (parse_iso(started) if started else 0)),
        price_per_hour=float(ledger.get("price_per_hour") or 0.0),
        project=ledger.get("project", ""),
        profile=ledger.get("profile", ""),
        resources=ledger.get("resources") or {},
        groups=tuple(user.get("groups") or ()),
        running=bool(server.get("ready")) or server.get("pending") == "spawn",
        source="hub",
    )
