"""The spawner's side of accounting: ask the platform service before a spawn, tell it when a
server ends. Runs in the hub process, authenticated to the service by a shared secret.

At most ``concurrency`` calls are in flight at once, and the timeout counts from when a call
is sent: the service decides gates one at a time, so a storm of spawns queues here rather
than in tornado's client, whose queue time counts against the request's timeout (a thousand
spawns at once were refused as "cannot be reached" by a healthy service).

When the service does not answer, ``when_unreachable`` decides (default: refuse servers
that cost money, allow free ones); every such event is logged and counted in the hub's
Prometheus metrics as ``mlfactory_budget_gate_unreachable_total``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from prometheus_client import Counter
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

log = logging.getLogger("mlfactory.spawner")

UNREACHABLE = Counter(
    "mlfactory_budget_gate_unreachable_total",
    "Budget checks the platform service did not answer, by the decision taken",
    ["decision"],
)


class ServiceGate:
    """``budget_check`` for the spawners: ``await gate(spawner, request)`` → refusal or None."""

    def __init__(
        self,
        url: str,
        secret: str,
        when_unreachable: str = "refuse-paid",
        timeout: float = 5.0,
        concurrency: int = 8,
    ) -> None:
        self.url = url.rstrip("/")
        self.secret = secret
        self.when_unreachable = when_unreachable
        self.timeout = timeout
        self.concurrency = concurrency
        self._slots = asyncio.Semaphore(concurrency)
        self._client: AsyncHTTPClient | None = None

    async def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        async with self._slots:
            if self._client is None:
                # its own client, with a slot for each call in flight: the hub's shared
                # client (10 slots) would queue calls and count the wait as their timeout
                self._client = AsyncHTTPClient(force_instance=True, max_clients=self.concurrency)
            resp = await self._client.fetch(
                HTTPRequest(
                    f"{self.url}{path}",
                    method="POST",
                    headers={
                        "Authorization": f"secret {self.secret}",
                        "Content-Type": "application/json",
                    },
                    body=json.dumps(body),
                    request_timeout=self.timeout,
                    connect_timeout=self.timeout,
                )
            )
        return json.loads(resp.body)

    async def __call__(self, spawner: Any, request: Any) -> str | None:
        ledger = spawner.ledger
        try:
            verdict = await self._post("/api/gate", ledger_body(ledger))
        except HTTPClientError as e:
            if e.code == 400 and e.response is not None:
                return _error_text(e.response.body)
            return self._unreachable(request.price_per_hour, f"HTTP {e.code}")
        except (OSError, ValueError) as e:
            return self._unreachable(request.price_per_hour, str(e) or type(e).__name__)
        if verdict.get("allowed"):
            for warning in verdict.get("warnings") or ():
                log.warning("Budget warning for %s: %s", ledger["user"], warning)
            return None
        return str(verdict.get("message") or "Your budget does not allow this server now.")

    def _unreachable(self, price: float, why: str) -> str | None:
        refuse = self.when_unreachable == "refuse-all" or (
            self.when_unreachable == "refuse-paid" and price > 0
        )
        UNREACHABLE.labels(decision="refused" if refuse else "allowed").inc()
        log.error(
            "Budget gate: the platform service did not answer (%s); %s by policy %r",
            why,
            "refusing" if refuse else "allowing",
            self.when_unreachable,
        )
        if not refuse:
            return None
        return (
            "The budget service cannot be reached, so servers that cost money cannot start "
            "right now. Try again in a minute, choose a free profile, or tell an admin."
        )

    async def standing(self, user: str, groups: list[str]) -> dict[str, Any] | None:
        """The user's budgets and spend for the picker; None when the service is away."""
        try:
            return await self._post("/api/standing", {"user": user, "groups": groups})
        except (HTTPClientError, OSError, ValueError) as e:
            log.warning("Could not read the budget of %s: %s", user, e)
            return None

    async def ended(self, key: str, when: float, reason: str, never_ready: bool = False) -> None:
        """Tell the service at once, so a stopped server stops counting now (``never_ready``:
        it never accepted connections, and costs nothing). Best effort: the service also
        finds the end itself, from the journal, when it reconciles."""
        body = {"ended_at": when, "reason": reason, "never_ready": never_ready}
        try:
            await self._post(f"/api/sessions/{key}/end", body)
        except (HTTPClientError, OSError, ValueError) as e:
            log.warning("Could not tell the platform service that %s ended: %s", key, e)


def ledger_body(ledger: dict[str, Any]) -> dict[str, Any]:
    keys = ("key", "user", "server_name", "project", "profile", "price_per_hour", "groups")
    return {**{k: ledger[k] for k in keys}, "resources": ledger.get("resources") or {}}


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error"))
    except (ValueError, AttributeError):
        return "The budget service refused the request."
