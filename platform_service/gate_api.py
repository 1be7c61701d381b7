"""The calls the hub's spawner makes, authenticated by the shared service secret: the budget
gate before a spawn, the standing the spawn page's picker shows, and the end of a session."""

from __future__ import annotations

import re
from typing import Any

from .accounting import GateRequest
from .base import APIError, SecretHandler, body_str, body_str_list
from .budgets import Verdict
from .data_broker import drop_at_session_end
from .identity_mint import revoke_at_session_end

SESSION_KEY = re.compile(r"[A-Za-z0-9_-]{8,80}")
MAX_BATCH = 200  # gates in one /api/gates call
MAX_BATCH_BYTES = 1024 * 1024


class GateHandler(SecretHandler):
    async def post(self) -> None:
        try:
            req = gate_request(self.json_body())
        except ValueError as e:
            raise APIError(400, str(e), field=str(e).split(":")[0]) from None
        self.write_json(verdict_json(await self.accountant.gate(req)))


class GateBatchHandler(SecretHandler):
    """Several spawns' gates in one call, decided in order as that many ``/api/gate`` calls
    would be. The hub sends the spawns that queued while its previous call was out, so a
    storm costs a few round trips instead of one per spawn. A malformed entry gets its own
    ``error`` and does not spoil the others."""

    async def post(self) -> None:
        gates = self.json_body(MAX_BATCH_BYTES).get("gates")
        if not isinstance(gates, list) or not 0 < len(gates) <= MAX_BATCH:
            raise APIError(400, f"gates: a list of 1 to {MAX_BATCH} gate requests is required")
        parsed: list[GateRequest | str] = []
        for body in gates:
            try:
                parsed.append(gate_request(body))
            except ValueError as e:
                parsed.append(str(e))
        reqs = [r for r in parsed if isinstance(r, GateRequest)]
        decided = iter(await self.accountant.gate_many(reqs) if reqs else ())
        self.write_json(
            {
                "verdicts": [
                    {"error": r} if isinstance(r, str) else verdict_json(next(decided))
                    for r in parsed
                ]
            }
        )


def gate_request(body: Any) -> GateRequest:
    """One gate request from its JSON; ValueError names the field at fault."""
    if not isinstance(body, dict):
        raise ValueError("gate: a JSON object is required")
    resources = body.get("resources", {})
    if not isinstance(resources, dict):
        raise ValueError("resources: a JSON object is required")
    return GateRequest(
        key=_key(body),
        user=body_str(body, "user", 255),
        server_name=body_str(body, "server_name", 255, required=False),
        project=body_str(body, "project", 63, required=False),
        profile=body_str(body, "profile", 63, required=False),
        price_per_hour=_price(body.get("price_per_hour")),
        groups=tuple(body_str_list(body, "groups")),
        resources=resources,
    )


def verdict_json(verdict: Verdict) -> dict[str, Any]:
    out: dict[str, Any] = {"allowed": verdict.allowed, "message": verdict.message}
    if verdict.standing is not None:
        out["budget"] = verdict.standing.as_json()
    if verdict.warnings:
        out["warnings"] = list(verdict.warnings)
    return out


class StandingHandler(SecretHandler):
    """The budgets a user's next spawn would charge, for the spawn page's picker."""

    async def post(self) -> None:
        user, groups = self.user_and_groups()
        self.write_json(await self.accountant.me(user, groups))


class SessionEndHandler(SecretHandler):
    async def post(self, key: str) -> None:
        body = self.json_body()
        when = body.get("ended_at")
        if when is not None and (isinstance(when, bool) or not isinstance(when, int | float)):
            raise APIError(400, "ended_at: use epoch seconds", field="ended_at")
        reason = str(body.get("reason") or "stopped")[:200]
        never_ready = body.get("never_ready", False)
        if not isinstance(never_ready, bool):
            raise APIError(400, "never_ready: use true or false", field="never_ready")
        ended = await self.accountant.end(key, when, reason, never_ready=never_ready)
        await drop_at_session_end(self.settings, key)  # the server's data roles go now
        await revoke_at_session_end(self.settings, key)  # and its managed identities
        if not ended:
            raise APIError(404, "No open session has this key.")
        self.write_json({"ended": True})


def _key(body: dict) -> str:
    value = body.get("key")
    if not isinstance(value, str) or not SESSION_KEY.fullmatch(value):
        raise ValueError("key: 8-80 letters, digits, '-' or '_' are required")
    return value


def _price(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
        raise ValueError("price_per_hour: a number from 0 is required")
    return float(value)


# Patterns are relative to the service's prefix; app.make_app prefixes them.
default_handlers = [
    (r"/api/gate", GateHandler),
    (r"/api/gates", GateBatchHandler),
    (r"/api/standing", StandingHandler),
    (r"/api/sessions/([A-Za-z0-9_-]{8,80})/end", SessionEndHandler),
]
