"""The platform service's client of the hub's REST API (its only way to reach the hub).

Pages through ``/users`` and ``/groups`` with a bounded page size, and needs only the scopes
granted to the service's role: list and read users, read servers and their state, stop
servers, and grant, list and revoke workspace shares (``shares``).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlencode

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from .periods import parse_iso
from .reconcile import Sighting

# JupyterHub answers list endpoints with pages (``items`` and ``_pagination``) only when asked
# for this media type; otherwise it sends a plain list silently cut at its page limit.
PAGINATION = "application/jupyterhub-pagination+json"
KEY_LEN = 80  # ledger_sessions.key


class HubAPIError(RuntimeError):
    """The hub answered in a way the service cannot trust (e.g. an incomplete list)."""


class HubAPI:
    def __init__(self, url: str, token: str, page_size: int = 200, timeout: float = 20) -> None:
        self.url = url.rstrip("/")
        self.token = token
        self.page_size = page_size
        self.timeout = timeout
        self.client = AsyncHTTPClient()

    async def request(
        self, method: str, path: str, body: Any = None, accept: str = "application/json"
    ) -> Any:
        req = HTTPRequest(
            f"{self.url}{path}",
            method=method,
            headers={"Authorization": f"token {self.token}", "Accept": accept},
            body=None if body is None else json.dumps(body),
            allow_nonstandard_methods=True,
            request_timeout=self.timeout,
        )
        resp = await self.client.fetch(req)
        return json.loads(resp.body) if resp.body else None

    async def pages(self, path: str, query: dict[str, str]) -> AsyncIterator[dict]:
        """Every item of a paginated list endpoint (``/users``, ``/groups``)."""
        offset = 0
        while True:
            q = urlencode({**query, "offset": offset, "limit": self.page_size})
            page = await self.request("GET", f"{path}?{q}", accept=PAGINATION)
            if not isinstance(page, dict):
                # a hub that does not paginate cuts the list at its limit: a partial list
                # would close the sessions of everyone missing from it
                if len(page) < self.page_size:
                    for item in page:
                        yield item
                    return
                raise HubAPIError(
                    f"the hub answered {path} with an unpaginated list of {len(page)} items; "
                    "it may be cut short (JupyterHub 2 or newer paginates)"
                )
            for item in page["items"]:
                yield item
            nxt = (page.get("_pagination") or {}).get("next")
            if not nxt or not page["items"]:
                return
            offset = nxt["offset"]

    async def users(self, state: str = "", include_stopped: bool = False) -> AsyncIterator[dict]:
        """Every user (with servers and their state), a page at a time."""
        query = {}
        if include_stopped:
            query["include_stopped_servers"] = "1"
        if state:
            query["state"] = state
        async for user in self.pages("/users", query):
            yield user

    async def groups(self) -> list[dict]:
        """Every group with its members."""
        return [g async for g in self.pages("/groups", {})]

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
        key = hub_key(user["name"], server_name, int(parse_iso(started)))
    else:
        key = ledger["key"][:KEY_LEN]
    return Sighting(
        key=key,
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
        # a pending spawn may still be refused by the budget gate: it never opens a session
        starting=not server.get("ready"),
    )


def hub_key(user: str, server_name: str, started: int) -> str:
    """The ledger key of a server the spawner gave none: readable when it fits (so rows
    already open keep their key), else a digest of the exact names (cutting them made every
    long-named user's servers share one key)."""
    key = f"hub-{user}-{server_name}-{started}"
    if len(key) <= KEY_LEN:
        return key
    digest = hashlib.sha256(json.dumps([user, server_name, started]).encode()).hexdigest()[:32]
    # "hubd-" can never begin a readable key ("hub-" + name)
    return f"hubd-{digest}-{user}-{server_name}"[:KEY_LEN]
