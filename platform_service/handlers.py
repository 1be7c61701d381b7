"""The platform service's HTTP routes (one table, ``routes``): the REST API and the dashboard.

Every route authenticates: the spawner's gate and session calls with the shared service
secret, everything else as a hub user through ``HubOAuthenticated`` (a token in the
``Authorization`` header, or the service's OAuth cookie with XSRF checked on writes).
Errors are JSON ``{"error": message, "field": ...}``; no traceback leaves the service.
"""

from __future__ import annotations

import csv
import hmac
import io
import json
import math
import re
from datetime import date, datetime, timedelta
from typing import Any

from jupyterhub.log import _scrub_uri
from jupyterhub.services.auth import HubOAuthCallbackHandler, HubOAuthenticated, UserNotAllowed
from mlfactory.hub.platform_config import Budget
from pydantic import ValidationError
from tornado import web
from tornado.log import app_log, gen_log

from .accounting import GateRequest
from .budgets import KINDS, BudgetBodyError, Rule, Scope, budget_input
from .culler import KeepAliveRefused
from .db import unavailable as db_unavailable
from .periods import iso_utc
from .permissions import (
    BUDGETS_READ,
    BUDGETS_WRITE,
    USAGE_READ,
    applies_to,
    can_see_scope,
    can_write_scope,
    grant,
    visible_scopes,
)
from .store import DIMENSIONS, Visibility

MAX_BODY = 64 * 1024
SESSION_KEY = re.compile(r"[A-Za-z0-9_-]{8,80}")
MAX_DAYS = 366


class NonFiniteNumber(ValueError):
    """NaN, Infinity or a number too large for a float: Python's json reads them, JSON has none."""


def _reject_constant(name: str) -> float:
    raise NonFiniteNumber(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(f"{text[:20]} is too large for a number")
    return value


def loads_strict(data: bytes | str) -> Any:
    """``json.loads`` that refuses what RFC 8259 does (NaN, Infinity, overflowing floats):
    they would reach the store and the idle-shutdown decisions as numbers."""
    return json.loads(data, parse_constant=_reject_constant, parse_float=_finite_float)


class APIError(web.HTTPError):
    def __init__(self, status: int, message: str, field: str | None = None) -> None:
        super().__init__(status)
        self.message = message
        self.field = field


class BaseHandler(web.RequestHandler):
    @property
    def accountant(self):
        return self.settings["accountant"]

    def now(self) -> float:
        return self.accountant.clock()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        body: dict[str, Any] = {"error": self._reason}
        if isinstance(exc, APIError):
            body["error"] = exc.message
            if exc.field:
                body["field"] = exc.field
        elif status_code == 403:
            body["error"] = "You do not have access to this."
        elif db_unavailable(exc):  # e.g. PostgreSQL restarting: the next try may work
            self.set_status(503)
            self.set_header("Retry-After", "30")
            body["error"] = (
                "The platform's database cannot be reached right now; try again in a minute, "
                "and tell an admin if it lasts."
            )
        elif status_code >= 500:
            body["error"] = "The platform service failed; the error is in its log."
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        # tornado's own logs the full URI and the request's repr: an OAuth code or a
        # ?token= would reach the log. The same lines, with JupyterHub's scrubber applied.
        where = f"{self.request.method} {_scrub_uri(self.request.uri or '')}"
        if isinstance(value, web.HTTPError):
            if value.get_message():
                gen_log.warning("%d %s: %s", value.status_code, where, value.get_message())
        elif db_unavailable(value):  # one line, not a traceback per request while it is down
            app_log.error("%s: the database cannot be reached: %s", where, value.orig)
        else:
            app_log.error("Uncaught exception %s", where, exc_info=(typ, value, tb))

    def write_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.set_header("Cache-Control", "no-store")
        self.finish(json.dumps(obj))

    def json_body(self, max_size: int = MAX_BODY) -> dict[str, Any]:
        """The request's JSON object; 400 for anything JSON does not allow (NaN, Infinity)."""
        if len(self.request.body) > max_size:
            raise APIError(413, "The request body is too large.")
        try:
            body = loads_strict(self.request.body or b"{}")
        except NonFiniteNumber as e:
            raise APIError(
                400, f"The request body is not valid JSON: {e}; send finite numbers (or null)."
            ) from None
        except ValueError:
            raise APIError(400, "The request body is not JSON.") from None
        if not isinstance(body, dict):
            raise APIError(400, "The request body must be a JSON object.")
        return body


class SecretHandler(BaseHandler):
    """Calls from the hub's spawner, authenticated by the shared service secret."""

    def prepare(self) -> None:
        given = self.request.headers.get("Authorization", "")
        secret = self.settings["service_secret"]
        expected = f"secret {secret}"
        if not secret or not hmac.compare_digest(given.encode(), expected.encode()):
            raise APIError(403, "This endpoint is for the hub's spawner only.")

    def check_xsrf_cookie(self) -> None:  # secret-authenticated, no cookies involved
        pass


class GateHandler(SecretHandler):
    async def post(self) -> None:
        body = self.json_body()
        try:
            resources = body.get("resources", {})
            if not isinstance(resources, dict):
                raise ValueError("resources: a JSON object is required")
            req = GateRequest(
                key=_key(body),
                user=_str(body, "user", 255),
                server_name=_str(body, "server_name", 255, required=False),
                project=_str(body, "project", 63, required=False),
                profile=_str(body, "profile", 63, required=False),
                price_per_hour=_price(body.get("price_per_hour")),
                groups=tuple(_str_list(body, "groups")),
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
        body = self.json_body()
        try:
            user = _str(body, "user", 255)
            groups = _str_list(body, "groups")
        except ValueError as e:
            raise APIError(400, str(e), field=str(e).split(":")[0]) from None
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
        if not await self.accountant.end(key, when, reason, never_ready=never_ready):
            raise APIError(404, "No open session has this key.")
        self.write_json({"ended": True})


class OAuthCallbackHandler(HubOAuthCallbackHandler, BaseHandler):
    """JupyterHub's OAuth callback on the service's own ``HubOAuth`` (the one the login
    redirect stored its state and PKCE verifier in), with the service's JSON errors."""

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    async def prepare(self) -> None:
        # The callback asks for current_user when the state is stale; identify the user here,
        # asynchronously, so the mixin's synchronous path never blocks the event loop.
        model = await self.hub_auth.get_user(self, sync=False)
        try:
            self._hub_auth_user_cache = self.check_hub_user(model) if model else None
        except UserNotAllowed:
            self._hub_auth_user_cache = None

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, web.HTTPError) and exc.log_message and 400 <= status_code < 500:
            # JupyterHub's messages here tell the user what to do ("Try logging in again.")
            kwargs["exc_info"] = (APIError, APIError(status_code, exc.log_message), None)
        super().write_error(status_code, **kwargs)


class UserHandler(HubOAuthenticated, BaseHandler):
    """A hub user: the model's ``name``, ``admin``, ``groups`` and token ``scopes``."""

    @property
    def hub_auth(self):
        return self.settings["hub_auth"]

    # API routes answer 403 JSON to an anonymous request; pages send the browser to log in.
    login_redirect = False

    async def prepare(self) -> None:
        # Identify the user here, asynchronously: the mixin's synchronous path would block
        # the event loop on a round trip to the hub.
        model = await self.hub_auth.get_user(self, sync=False)
        self._hub_auth_user_cache = None
        if not model and not self.login_redirect:
            raise APIError(403, "Authenticate with a hub token: 'Authorization: token <token>'.")
        if model:
            try:
                self._hub_auth_user_cache = self.check_hub_user(model)
            except UserNotAllowed:
                raise APIError(403, "You do not have access to the platform service.") from None

    @property
    def model(self) -> dict[str, Any]:
        return self.current_user

    def visibility(self, scope: str) -> Visibility:
        return grant(self.model, scope)

    def require(self, scope: str) -> Visibility:
        v = self.visibility(scope)
        if not (v.everyone or v.users or v.groups):
            raise APIError(403, f"This needs the {scope} scope; ask an admin for it.")
        return v

    async def my_groups(self) -> list[str]:
        return await self.accountant.groups_of(self.model["name"], self.model.get("groups"))

    def date_range(self) -> tuple[float, float, str, str]:
        tz = self.accountant.tz
        today = datetime.fromtimestamp(self.now(), tz).date()
        first = today.replace(day=1)
        start = _date_arg(self.get_argument("from", None), "from", first)
        end = _date_arg(self.get_argument("to", None), "to", today)
        if end < start:
            raise APIError(400, "to: must not be before from", field="to")
        if (end - start).days >= MAX_DAYS:
            raise APIError(400, f"to: at most {MAX_DAYS} days per report", field="to")
        t0 = datetime.combine(start, datetime.min.time(), tz).timestamp()
        t1 = datetime.combine(end + timedelta(days=1), datetime.min.time(), tz).timestamp()
        return t0, t1, start.isoformat(), end.isoformat()


class MeHandler(UserHandler):
    @web.authenticated
    async def get(self) -> None:
        me = self.model["name"]
        data = await self.accountant.me(me, await self.my_groups())
        self.write_json(data)


class BudgetsHandler(UserHandler):
    @web.authenticated
    async def get(self) -> None:
        v = self.require(BUDGETS_READ)
        members = await self.accountant.members()
        standings = await self.accountant.budget_list()
        rows = [s.as_json() for s in standings if can_see_scope(v, s.rule.scope, members)]
        self.write_json({"currency": self.accountant.currency, "budgets": rows})


class BudgetHandler(UserHandler):
    async def _scope(self, kind: str, name: str, v: Visibility) -> Scope:
        if kind not in KINDS:
            raise APIError(404, f"No budget kind {kind!r}; use one of {', '.join(KINDS)}.")
        scope = Scope(kind, name)  # type: ignore[arg-type]
        members = await self.accountant.members()
        if not can_see_scope(v, scope, members):
            raise APIError(404, f"No budget for {scope}.")
        return scope

    @web.authenticated
    async def get(self, kind: str, name: str) -> None:
        scope = await self._scope(kind, name, self.require(BUDGETS_READ))
        standing = await self.accountant.standing_of(scope)
        if standing is None:
            raise APIError(404, f"No budget for {scope}.")
        self.write_json(standing.as_json())

    @web.authenticated
    async def put(self, kind: str, name: str) -> None:
        v = self.require(BUDGETS_WRITE)
        scope = await self._scope(kind, name, self.visibility(BUDGETS_READ))
        me, my_groups = self.model["name"], await self.my_groups()
        members = await self.accountant.members()
        if not can_write_scope(v, scope, me, members):
            if applies_to(scope, me, my_groups):
                raise APIError(403, f"You cannot change the budget of {scope}: it applies to you.")
            raise APIError(404, f"No budget for {scope}.")
        if kind == "project" and name not in {p.name for p in self.accountant.config.projects}:
            raise APIError(404, f"No project {name!r} in the platform config.")
        if kind in ("group", "project") and not _slug_ok(name):
            raise APIError(400, "name: not a valid group or project name", field="name")
        try:
            budget = Budget.model_validate(budget_input(self.json_body(), scope))
        except BudgetBodyError as e:
            raise APIError(400, str(e), field=e.field) from None
        except ValidationError as e:
            err = e.errors()[0]
            field = ".".join(str(p) for p in err["loc"]) or "body"
            raise APIError(400, f"{field}: {err['msg']}", field=field) from None
        rule = Rule.from_budget(scope, budget, source="api")
        created = scope not in self.accountant.stored
        await self.accountant.put_rule(rule, me)
        standing = await self.accountant.standing_of(scope)
        self.write_json(standing.as_json(), status=201 if created else 200)

    @web.authenticated
    async def delete(self, kind: str, name: str) -> None:
        v = self.require(BUDGETS_WRITE)
        scope = await self._scope(kind, name, self.visibility(BUDGETS_READ))
        if not can_write_scope(v, scope, self.model["name"], await self.accountant.members()):
            raise APIError(404, f"No budget for {scope}.")
        if not await self.accountant.delete_rule(scope):
            raise APIError(404, f"No budget set through the API for {scope}.")
        self.set_status(204)
        self.finish()


class UsageHandler(UserHandler):
    @web.authenticated
    async def get(self) -> None:
        v = self.require(USAGE_READ)
        by = self.get_argument("by", "user")
        if by not in DIMENSIONS:
            raise APIError(400, f"by: use one of {', '.join(DIMENSIONS)}", field="by")
        fmt = self.get_argument("format", "json")
        if fmt not in ("json", "csv"):
            raise APIError(400, "format: use json or csv", field="format")
        t0, t1, d0, d1 = self.date_range()
        rows = await self.accountant.usage(by, t0, t1, v)
        if fmt == "csv":
            out = io.StringIO()
            writer = csv.writer(out)
            writer.writerow([by, "cost", "hours", "currency"])
            for r in rows:
                writer.writerow(
                    [_csv_safe(str(r["key"])), r["cost"], r["hours"], self.accountant.currency]
                )
            self.set_header("Content-Type", "text/csv; charset=utf-8")
            self.set_header(
                "Content-Disposition", f'attachment; filename="usage-{by}-{d0}-{d1}.csv"'
            )
            self.finish(out.getvalue())
            return
        self.write_json(
            {"by": by, "from": d0, "to": d1, "currency": self.accountant.currency, "rows": rows}
        )


class RunningHandler(UserHandler):
    @web.authenticated
    async def get(self) -> None:
        v = self.require(USAGE_READ)
        self.write_json(
            {"currency": self.accountant.currency, "servers": await self.accountant.running(v)}
        )


class AlertsHandler(UserHandler):
    @web.authenticated
    async def get(self) -> None:
        v = self.require(BUDGETS_READ)
        t0, t1, _d0, _d1 = self.date_range()
        scopes = None if v.everyone else visible_scopes(v, await self.accountant.members())
        rows = await self.accountant.alerts(t0, t1, scopes)
        self.write_json(
            {
                "alerts": [
                    {
                        **r,
                        "fired_at": iso_utc(r["fired_at"]),
                        "period_start": iso_utc(r["period_start"]),
                    }
                    for r in rows
                ]
            }
        )


class CullingHandler(UserHandler):
    @property
    def culler(self):
        culler = self.settings.get("culler")
        if culler is None:
            raise APIError(503, "Idle shutdown is not running in this platform service.")
        return culler


class ActivityHandler(CullingHandler):
    """A user's server reports what runs in it (its own token; see server_ext/activity.py)."""

    @web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        try:
            body["server_name"] = _str(body, "server_name", 255, required=False)
        except ValueError as e:
            raise APIError(400, str(e), field="server_name") from None
        await self.culler.record_report(self.model["name"], body)
        self.set_status(204)
        self.finish()


class CullingStatusHandler(CullingHandler):
    @web.authenticated
    async def get(self) -> None:
        name = self.get_argument("server_name", None)
        if name is not None and len(name) > 255:
            raise APIError(400, "server_name: at most 255 characters", field="server_name")
        self.write_json(await self.culler.status(self.model["name"], name))


class KeepAliveHandler(CullingHandler):
    @web.authenticated
    async def post(self) -> None:
        body = self.json_body()
        try:
            name = _str(body, "server_name", 255, required=False)
        except ValueError as e:
            raise APIError(400, str(e), field="server_name") from None
        try:
            self.write_json(await self.culler.keepalive(self.model["name"], name))
        except KeepAliveRefused as e:
            raise APIError(409, str(e)) from None


class CullingStopsHandler(CullingHandler):
    @web.authenticated
    async def get(self) -> None:
        v = self.require(USAGE_READ)
        t0, t1, d0, d1 = self.date_range()
        report = await self.culler.stops(t0, t1, v)
        self.write_json({"from": d0, "to": d1, "currency": self.accountant.currency, **report})


class OpenAPIHandler(BaseHandler):
    def get(self) -> None:
        self.set_header("Content-Type", "application/yaml")
        self.finish(self.settings["openapi"])


class HealthHandler(BaseHandler):
    def get(self) -> None:
        last = self.accountant.last_tick
        self.write_json({"status": "ok", "last_tick": iso_utc(last)})


def _str(body: dict, key: str, max_len: int, required: bool = True) -> str:
    value = body.get(key, "")
    if not isinstance(value, str) or (required and not value) or len(value) > max_len:
        raise ValueError(f"{key}: a string of 1-{max_len} characters is required")
    return value


def _str_list(body: dict, key: str, max_items: int = 200) -> list[str]:
    value = body.get(key) or []
    if (
        not isinstance(value, list)
        or len(value) > max_items
        or not all(isinstance(x, str) and len(x) <= 255 for x in value)
    ):
        raise ValueError(f"{key}: a list of at most {max_items} names is required")
    return value


def _key(body: dict) -> str:
    value = body.get("key")
    if not isinstance(value, str) or not SESSION_KEY.fullmatch(value):
        raise ValueError("key: 8-80 letters, digits, '-' or '_' are required")
    return value


def _price(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < 1e6:
        raise ValueError("price_per_hour: a number from 0 is required")
    return float(value)


def _date_arg(text: str | None, name: str, fallback: date) -> date:
    if text is None:
        return fallback
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise APIError(400, f"{name}: use a date like 2026-11-01", field=name) from None


def _slug_ok(name: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?", name))


def _csv_safe(text: str) -> str:
    # a spreadsheet would run a cell starting with these as a formula
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def routes(prefix: str) -> list[tuple]:
    from .components import (
        PublishedHandler,
        ReviewHandler,
        SubmissionHandler,
        SubmissionsHandler,
    )
    from .dashboard import DashboardHandler

    p = prefix.rstrip("/")
    return [
        (rf"{p}/?", web.RedirectHandler, {"url": f"{p}/dashboard"}),
        (rf"{p}/dashboard", DashboardHandler),
        (rf"{p}/oauth_callback", OAuthCallbackHandler),
        (rf"{p}/openapi.yaml", OpenAPIHandler),
        (rf"{p}/api/health", HealthHandler),
        (rf"{p}/api/gate", GateHandler),
        (rf"{p}/api/standing", StandingHandler),
        (rf"{p}/api/sessions/([A-Za-z0-9_-]{{8,80}})/end", SessionEndHandler),
        (rf"{p}/api/me", MeHandler),
        (rf"{p}/api/budgets", BudgetsHandler),
        (rf"{p}/api/budgets/([a-z]+)/([^/]+)", BudgetHandler),
        (rf"{p}/api/usage", UsageHandler),
        (rf"{p}/api/servers", RunningHandler),
        (rf"{p}/api/alerts", AlertsHandler),
        (rf"{p}/api/activity", ActivityHandler),
        (rf"{p}/api/culling/status", CullingStatusHandler),
        (rf"{p}/api/culling/keepalive", KeepAliveHandler),
        (rf"{p}/api/culling/stops", CullingStopsHandler),
        (rf"{p}/api/components/submissions", SubmissionsHandler),
        (rf"{p}/api/components/submissions/([0-9a-f]{{16}})", SubmissionHandler),
        (rf"{p}/api/components/submissions/([0-9a-f]{{16}})/review", ReviewHandler),
        (rf"{p}/api/components/published", PublishedHandler),
    ]
