"""The spawner's side of accounting: ask the platform service before a spawn, tell it when a
server ends. Runs in the hub process, authenticated to the service by a shared secret.

Gates are batched: up to ``concurrency`` ``/api/gates`` calls are out at once, and while they
all are, the spawns that arrive wait and go together in the next free one (up to
``batch_max``); the service decides a batch's gates in order as that many single calls would
be. A storm of a thousand spawns then costs a few dozen round trips, not a thousand, each of
which a hub busy with the storm would answer late: one call per spawn with 8 in flight left
spawns refused as "cannot be reached" by a healthy service at 1,000 users, and one call at a
time made every spawn wait for a chain of them.
The timeout counts from when a call is sent, not while it waits for its turn, in the
service's time rather than the busy hub's (``_within``), and grows with the batch.

When the service does not answer, ``when_unreachable`` decides (default: refuse servers
that cost money, allow free ones); every such event is logged and counted in the hub's
Prometheus metrics as ``mlfactory_budget_gate_unreachable_total``.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from aiohttp import ClientConnectionError, ClientError, ClientTimeout
from jupyterhub.httpclient import fetch as hub_fetch
from prometheus_client import Counter

log = logging.getLogger("mlfactory.spawner")

UNREACHABLE = Counter(
    "mlfactory_budget_gate_unreachable_total",
    "Budget checks the platform service did not answer, by the decision taken",
    ["decision"],
)


BATCH_PER_TIMEOUT = 25


class ServiceAnswered(Exception):
    """The service answered a call with an error status (its ``body`` may say why)."""

    def __init__(self, code: int, body: bytes) -> None:
        super().__init__(f"HTTP {code}")
        self.code = code
        self.body = body


class ServiceGate:
    """``budget_check`` for the spawners: ``await gate(spawner, request)`` → refusal or None."""

    def __init__(
        self,
        url: str,
        secret: str,
        when_unreachable: str = "refuse-paid",
        timeout: float = 5.0,
        concurrency: int = 8,
        batch_max: int = 25,  # small: a batch's spawns wait for its slowest answer
    ) -> None:
        self.url = url.rstrip("/")
        self.secret = secret
        self.when_unreachable = when_unreachable
        self.timeout = timeout
        self.concurrency = concurrency
        self.batch_max = batch_max
        self._slots = asyncio.Semaphore(concurrency)
        self._queue: list[tuple[dict[str, Any], asyncio.Future]] = []
        self._senders: set[asyncio.Task] = set()

    # traitlets deep-copies a config value into every instance it configures: without these,
    # each spawner got its own gate (its own queue, slots and client), so spawns were never
    # batched and a storm opened a connection to the service per spawn (~650 at once).
    def __copy__(self) -> ServiceGate:
        return self

    def __deepcopy__(self, memo: dict[int, Any]) -> ServiceGate:
        return self

    async def _post(
        self, path: str, body: dict[str, Any], limit: float | None = None
    ) -> dict[str, Any]:
        limit = limit or self.timeout
        # ``_slots`` bounds the calls in flight, so none waits in the client's queue with
        # its timeout running; the client's own timeout is only a backstop
        async with self._slots:
            call = asyncio.ensure_future(
                post_with_secret(f"{self.url}{path}", self.secret, body, max(60.0, 12 * limit))
            )
            await self._within(call, limit)
        code, answer = call.result()
        if code >= 400:
            raise ServiceAnswered(code, answer)
        return json.loads(answer)

    @staticmethod
    async def _within(call: asyncio.Future, limit: float) -> None:
        """Wait for ``call`` ``limit`` seconds of the service's time, not the hub's.

        A hub busy with a storm of spawns runs each turn of its event loop late, seconds at
        a time, and reading an answer takes several turns; a plain timeout then fires before
        the loop has read an answer that arrived long ago, and a healthy service is reported
        unreachable. So the wait is counted in twentieths of the limit, and a step the
        loop overran counts only as long as it was meant to last."""
        loop = asyncio.get_running_loop()
        step = limit / 20
        waited = 0.0
        while not call.done():
            started = loop.time()
            await asyncio.wait({call}, timeout=step)
            waited += min(loop.time() - started, step)
            if waited >= limit and not call.done():
                call.cancel()
                raise TimeoutError(f"no answer within {limit:g} s")

    async def _verdict(self, body: dict[str, Any]) -> dict[str, Any]:
        """The service's verdict on one gate, sent with whatever else is waiting."""
        future: asyncio.Future = asyncio.get_running_loop().create_future()
        self._queue.append((body, future))
        # done(), not a done callback: a sender whose queue just ran dry has returned, but
        # its callbacks run later; counting it would leave this spawn with nobody to send it
        self._senders = {t for t in self._senders if not t.done()}
        if len(self._senders) < self.concurrency:
            self._senders.add(asyncio.create_task(self._send_queued()))
        return await future

    async def _send_queued(self) -> None:
        while self._queue:
            batch, self._queue = self._queue[: self.batch_max], self._queue[self.batch_max :]
            try:
                # the service decides a batch's gates one by one: ``timeout`` for every
                # BATCH_PER_TIMEOUT of them (a healthy one takes milliseconds each)
                limit = self.timeout * max(1.0, len(batch) / BATCH_PER_TIMEOUT)
                answer = await self._ask_twice({"gates": [b for b, _ in batch]}, limit)
                verdicts = answer["verdicts"]
                if not isinstance(verdicts, list) or len(verdicts) != len(batch):
                    raise ValueError("the service answered a different number of verdicts")
            except Exception as e:  # each waiting spawn decides by its own policy
                for _, future in batch:
                    if not future.done():
                        future.set_exception(e)
                continue
            for (_, future), verdict in zip(batch, verdicts, strict=True):
                if not future.done():
                    future.set_result(verdict)

    async def _ask_twice(self, body: dict[str, Any], limit: float) -> dict[str, Any]:
        """``/api/gates``, asked once more when no answer came at all (a timeout, a dropped
        connection): the storm's busiest second should not refuse a spawn that a healthy
        service would admit. Safe to repeat: the service admits a known key again without
        opening a second session."""
        try:
            return await self._post("/api/gates", body, limit)
        except (TimeoutError, ClientConnectionError) as e:  # no answer (a status is an answer)
            log.warning("Budget gate: %s; asking the platform service once more", str(e) or repr(e))
        return await self._post("/api/gates", body, limit)

    async def __call__(self, spawner: Any, request: Any) -> str | None:
        ledger = spawner.ledger
        try:
            verdict = await self._verdict(ledger_body(ledger))
        except ServiceAnswered as e:
            if e.code == 400:
                return _error_text(e.body)
            return self._unreachable(request.price_per_hour, f"HTTP {e.code}")
        except (ClientError, OSError, ValueError, KeyError, TypeError) as e:
            return self._unreachable(request.price_per_hour, str(e) or type(e).__name__)
        if verdict.get("error"):  # this request was malformed, not the service away
            return str(verdict["error"])
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
        except (ServiceAnswered, ClientError, OSError, ValueError) as e:
            log.warning("Could not read the budget of %s: %s", user, e)
            return None

    async def ended(self, key: str, when: float, reason: str, never_ready: bool = False) -> None:
        """Tell the service at once, so a stopped server stops counting now (``never_ready``:
        it never accepted connections, and costs nothing). Best effort: the service also
        finds the end itself, from the journal, when it reconciles."""
        body = {"ended_at": when, "reason": reason, "never_ready": never_ready}
        try:
            await self._post(f"/api/sessions/{key}/end", body)
        except (ServiceAnswered, ClientError, OSError, ValueError) as e:
            log.warning("Could not tell the platform service that %s ended: %s", key, e)


async def post_with_secret(
    url: str, secret: str, body: dict[str, Any], limit: float
) -> tuple[int, bytes]:
    """POST ``body`` to the platform service as the hub (the shared secret), on the hub's
    own HTTP client (``jupyterhub.httpclient``, aiohttp): its connections are kept alive (a
    tornado client opened one per call, ~0.4 ms of each) and it carries the hub's internal
    TLS when that is on. Returns the status and the body; raises ``aiohttp.ClientError`` or
    ``TimeoutError`` when no answer came within ``limit`` seconds."""
    response = await hub_fetch(
        url,
        method="POST",
        raise_for_status=False,
        headers={"Authorization": f"secret {secret}", "Content-Type": "application/json"},
        data=json.dumps(body),
        timeout=ClientTimeout(total=limit),
    )
    async with response:
        return response.status, await response.read()


def ledger_body(ledger: dict[str, Any]) -> dict[str, Any]:
    keys = ("key", "user", "server_name", "project", "profile", "price_per_hour", "groups")
    return {**{k: ledger[k] for k in keys}, "resources": ledger.get("resources") or {}}


def _error_text(body: bytes) -> str:
    try:
        return str(json.loads(body).get("error"))
    except (ValueError, AttributeError):
        return "The budget service refused the request."
