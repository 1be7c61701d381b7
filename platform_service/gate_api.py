"""The calls the hub's spawner makes, authenticated by the shared service secret: the budget
gate before a spawn, the standing the spawn page's picker shows, and the end of a session."""

from __future__ import annotations

import re
from typing import Any

from .accounting import GateRequest
from .base import APIError, SecretHandler, body_str, body_str_list
from .data_broker import drop_at_session_end

SESSION_KEY = re.compile(r"[A-Za-z0-9_-]{8,80}")


class GateHandler(SecretHandler):
    async def post(self) -> None:
        body = self.json_body()
        try:
            resources = body.get("resources", {})
            if not isinstance(resources, dict):
                raise ValueError("resources: a JSON object is required")
            req = GateRequest(
                key=_key(body),
                user=body_str(body, "user", 255),
                server_name=body_str(body, "server_name", 255, required=False),
                project=body_str(body, "project", 63, required=False),
                profile=body_str(body, "profile", 63, required=False),
                price_per_hour=_price(body.get("price_per_hour")),
                groups=tuple(body_str_list(body, "groups")),
                resources=resources,
            )
        except ValueError as e:
            raise APIError(400, str(e), field=str(e).split(":")[0]) from None
        verdict = await self.accountant.gate(req)
        out: dict[str, Any] = {"allowed": verdict.allowed, "message": verdict.message}
        if verdict.standing is not None:
            out["budget"] = verdict.standing.as_json()
        if verdict.warnings:
            out["warnings"] = list(verdict.warnings)
        self.write_json(out)


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
    (r"/api/standing", StandingHandler),
    (r"/api/sessions/([A-Za-z0-9_-]{8,80})/end", SessionEndHandler),
]
