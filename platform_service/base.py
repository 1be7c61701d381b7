"""What every route of the platform service shares: the handler base classes, JSON errors
and the checks on request bodies. Each handler module (``service_api``, ``gate_api``,
``budget_api``, ``culling_api``, ``home_api``, ``components``, ``dashboard``, ...) imports
its bases from here and ends with a ``default_handlers`` list, as JupyterHub's
``apihandlers/*.py`` do; ``app`` concatenates them under the service's prefix. No handler
module imports another.

Every route authenticates: the hub process's calls (the spawner's gate and sessions, the
home page) with the shared service secret (``SecretHandler``), everything else as a hub
user through ``HubOAuthenticated`` (``UserHandler``: a token in the ``Authorization``
header, or the service's OAuth cookie with XSRF checked on writes). Errors are JSON
``{"error": message, "field": ...}``; no traceback leaves the service.
"""

from __future__ import annotations

import hmac
import json
import math
from datetime import date, datetime, timedelta
from typing import Any
from urllib.parse import urlparse, urlunparse

import orjson
from jupyterhub.services.auth import HubOAuthenticated, UserNotAllowed
from tornado import web
from tornado.log import app_log, gen_log

from .db import unavailable as db_unavailable
from .permissions import grant
from .store import Visibility

MAX_BODY = 64 * 1024
MAX_DAYS = 366


# JupyterHub's query keys that may carry a secret (jupyterhub.log.SCRUB_PARAM_KEYS)
SCRUB_PARAM_KEYS = ("token", "auth", "key", "code", "state", "_xsrf")


def scrub_uri(uri: str) -> str:
    """``uri`` with secrets replaced by ``[secret]``, as JupyterHub's ``jupyterhub.log``
    scrubs its logs: the value of any query parameter whose name contains a key above, and
    the token of an ``/api/authorizations/{cookie,token}/`` path. The same rules here, not
    an import: ``jupyterhub.log`` loads the hub's handlers, spawner and metrics (~10 MiB in
    a process that uses none of them); ``tests/service/test_logging.py`` checks the two
    agree."""
    if "/api/authorizations/cookie/" in uri or "/api/authorizations/token/" in uri:
        uri = uri.rsplit("/", 1)[0] + "/[secret]"
    parsed = urlparse(uri)
    if not parsed.query:
        return uri
    parts = parsed.query.split("&")
    changed = False
    for i, part in enumerate(parts):
        key, sep, _ = part.partition("=")
        if sep and any(k in key for k in SCRUB_PARAM_KEYS):
            parts[i] = key + "=[secret]"
            changed = True
    return urlunparse(parsed._replace(query="&".join(parts))) if changed else uri


class NonFiniteNumber(ValueError):
    """NaN, Infinity or a number too large for a float: Python's json reads them, JSON has none."""


def _reject_constant(name: str) -> float:
    raise NonFiniteNumber(f"{name} is not a number JSON allows")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise NonFiniteNumber(f"{text[:20]} is too large for a number")
    return value


def dumps(obj: Any) -> bytes:
    """A response body: UTF-8 JSON in one buffer (``json.dumps`` builds a list of small
    strings first: 1.8 MiB for the dashboard's list of 1,000 running servers), a
    non-finite float as null (never the invalid ``NaN``)."""
    return orjson.dumps(obj, option=orjson.OPT_NON_STR_KEYS)


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
        self.finish(dumps(body))

    def log_exception(self, typ: Any, value: BaseException | None, tb: Any) -> None:
        # tornado's own logs the full URI and the request's repr: an OAuth code or a
        # ?token= would reach the log. The same lines, with JupyterHub's scrubber applied.
        where = f"{self.request.method} {scrub_uri(self.request.uri or '')}"
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
        self.finish(dumps(obj))

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
    """Calls from the hub process (the spawner's gate, the home page), authenticated by the
    shared service secret."""

    def prepare(self) -> None:
        given = self.request.headers.get("Authorization", "")
        secret = self.settings["service_secret"]
        expected = f"secret {secret}"
        if not secret or not hmac.compare_digest(given.encode(), expected.encode()):
            raise APIError(
                403, "This endpoint is for the hub process only (the spawner and the home page)."
            )

    def check_xsrf_cookie(self) -> None:  # secret-authenticated, no cookies involved
        pass

    def user_and_groups(self) -> tuple[str, list[str]]:
        """The user the hub asks about, and their groups, from the JSON body."""
        body = self.json_body()
        try:
            return body_str(body, "user", 255), body_str_list(body, "groups")
        except ValueError as e:
            raise APIError(400, str(e), field=str(e).split(":")[0]) from None


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


def body_str(body: dict, key: str, max_len: int, required: bool = True) -> str:
    """``body[key]``, a string of at most ``max_len`` characters; ValueError naming the key."""
    value = body.get(key, "")
    if not isinstance(value, str) or (required and not value) or len(value) > max_len:
        raise ValueError(f"{key}: a string of 1-{max_len} characters is required")
    return value


def body_str_list(body: dict, key: str, max_items: int = 200) -> list[str]:
    """``body[key]``, a list of names (none when absent); ValueError naming the key."""
    value = body.get(key) or []
    if (
        not isinstance(value, list)
        or len(value) > max_items
        or not all(isinstance(x, str) and len(x) <= 255 for x in value)
    ):
        raise ValueError(f"{key}: a list of at most {max_items} names is required")
    return value


def _date_arg(text: str | None, name: str, fallback: date) -> date:
    if text is None:
        return fallback
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise APIError(400, f"{name}: use a date like 2026-11-01", field=name) from None
