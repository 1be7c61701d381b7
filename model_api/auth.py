"""Who may call a model: a bearer token (standalone) or JupyterHub scopes (hub service).

Tokens are read from the ``Authorization`` header only, never from the URL (URLs end up in
logs and browser history). Behind JupyterHub the server runs as a hub service and asks the hub
who a token belongs to with ``jupyterhub.services.auth.HubAuth``; jupyterhub is imported only
in that mode, so the library works without Jupyter installed.

The hub's answers are cached for a few seconds only (``cache_seconds``, never past the
token's ``expires_at`` when the hub says it), and a token the hub refuses is dropped at once:
a deleted user's or an expired token stops working within seconds, not after HubAuth's
default five minutes.

Scopes (JupyterHub custom scopes, declared in the hub config; see ``hub_custom_scopes``):
``custom:mlfactory:models:<name>:predict`` lets a token use one model (metadata, schema,
predict, infer); ``custom:mlfactory:models:predict`` lets it use every model of the service.
Custom scopes exist only from hub start, so a model published later is also open to its
owner and to the groups its owner granted, as the registry wrote them in the model's
``access.yaml`` (``Access``; the rule is ``may_predict``).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Protocol
from urllib.parse import quote

import yaml

from .errors import Forbidden, NotReady, Unauthorized

SCOPE_PREFIX = "custom:mlfactory:models"
ALL_MODELS_SCOPE = f"{SCOPE_PREFIX}:predict"
SERVICE_NAME = "models"  # the hub service's name (hub_config/hubconfig.py)
SERVICE_ACCESS_SCOPE = f"access:services!service={SERVICE_NAME}"
_BEARER = re.compile(r"(?:bearer|token)\s+(\S+)\s*$", re.IGNORECASE)


def model_scope(name: str) -> str:
    return f"{SCOPE_PREFIX}:{name}:predict"


def hub_custom_scopes(model_names: Iterable[str]) -> dict[str, dict[str, Any]]:
    """The ``c.JupyterHub.custom_scopes`` entries for these models (admins grant them in roles).

    The all-models scope lists each model's scope as a subscope, so a role with it passes the
    per-model check too; the server also accepts it directly for models published later.
    """
    names = sorted(model_names)
    scopes: dict[str, dict[str, Any]] = {
        model_scope(n): {"description": f"Predict with the model '{n}'."} for n in names
    }
    scopes[ALL_MODELS_SCOPE] = {
        "description": "Predict with every model of the mlfactory model service.",
        "subscopes": [model_scope(n) for n in names],
    }
    return scopes


ACCESS_FILE = "access.yaml"  # <root>/<model>/access.yaml, written by the registry only


@dataclass(frozen=True, slots=True)
class Access:
    """Who may call one model besides the holders of its scopes: its owner and the members
    of the groups the owner granted (the registry's ``predict_groups``)."""

    owner: str | None = None
    predict_groups: frozenset[str] = frozenset()


def parse_access(text: str) -> Access:
    """``access.yaml`` -> Access; ValueError naming what is wrong (then nobody is let in by
    it: the caller treats the model as having no owner and no granted groups)."""
    data = yaml.safe_load(text) or {}
    if not isinstance(data, dict):
        raise ValueError("access.yaml must be a mapping with owner and predict_groups")
    owner = data.get("owner")
    groups = data.get("predict_groups") or []
    if owner is not None and not isinstance(owner, str):
        raise ValueError(f"access.yaml: owner must be a user name, not {owner!r}")
    if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
        raise ValueError("access.yaml: predict_groups must be a list of group names")
    return Access(owner or None, frozenset(groups))


def dump_access(access: Access) -> str:
    return yaml.safe_dump(
        {"owner": access.owner, "predict_groups": sorted(access.predict_groups)},
        sort_keys=True,
    )


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    scopes: frozenset[str] | None = None  # None: every model of this server
    groups: frozenset[str] = frozenset()  # the hub's groups of the token's user
    # "user" or "service": a hub service named like a model's owner is not its owner
    kind: str = "user"
    # the token may be used with this service (``access:services[!service=<name>]``):
    # without it the token was meant for something else (e.g. another service's login)
    # and stands for its user only through the model's scopes, never as owner or member
    service_access: bool = True

    def may_use(self, model: str, access: Access | None = None) -> bool:
        return may_predict(self, model, access)


def may_predict(ident: Identity, model: str, access: Access | None) -> bool:
    """The token has the model's scope or the all-models scope, or its user owns the model
    or is in one of the groups the owner granted."""
    s = ident.scopes
    if s is None or model_scope(model) in s or ALL_MODELS_SCOPE in s:
        return True
    if access is None or ident.kind != "user" or not ident.service_access:
        return False
    return ident.name == access.owner or not ident.groups.isdisjoint(access.predict_groups)


def refusal(ident: Identity, model: str, access: Access | None) -> Forbidden:
    """The 403 for a caller ``may_predict`` refused: what would let them in."""
    if not ident.service_access and may_predict(replace(ident, service_access=True), model, access):
        return Forbidden(
            f"this token of {ident.name} may not use the models service: calling "
            f"{model!r} as its owner or through a granted group needs a token with the "
            f"scope {SERVICE_ACCESS_SCOPE} (or access:services), e.g. a new token from the "
            "hub's token page",
            {"model": model, "required_scopes": [SERVICE_ACCESS_SCOPE]},
        )
    ways = [f"the scope {model_scope(model)} or {ALL_MODELS_SCOPE}"]
    if access is not None and access.predict_groups:
        ways.append(f"membership of one of the groups {', '.join(sorted(access.predict_groups))}")
    ask = f"; ask {access.owner}, its owner, or an admin" if access and access.owner else ""
    return Forbidden(
        f"{ident.name} may not use the model {model!r}: that needs {' or '.join(ways)}{ask}",
        {
            "model": model,
            "required_scopes": [model_scope(model), ALL_MODELS_SCOPE],
            "predict_groups": sorted(access.predict_groups) if access else [],
        },
    )


def bearer_token(headers: Any) -> str | None:
    m = _BEARER.match(headers.get("Authorization", ""))
    return m.group(1) if m else None


class Authorizer(Protocol):
    async def authorize(
        self, headers: Any, model: str | None, access: Access | None = None
    ) -> Identity:
        """Return the caller or raise Unauthorized/Forbidden. ``model=None``: any identity
        will do (listing models, which is then filtered with ``Identity.may_use``);
        ``access``: the model's owner and granted groups, from the repository."""


class NoAuth:
    """Anyone may call. Only for a server bound to localhost in a trusted setting."""

    async def authorize(
        self, headers: Any, model: str | None, access: Access | None = None
    ) -> Identity:
        return Identity("anonymous")


class TokenAuth:
    """Standalone: ``Authorization: Bearer <token>`` with one of the configured tokens."""

    def __init__(self, tokens: Iterable[str]) -> None:
        # keep digests only, and compare in constant time
        self._digests = [hashlib.sha256(t.encode()).digest() for t in tokens if t]
        if not self._digests:
            raise ValueError("token auth needs at least one non-empty token")

    async def authorize(
        self, headers: Any, model: str | None, access: Access | None = None
    ) -> Identity:
        token = bearer_token(headers)
        if token is None:
            raise Unauthorized("send 'Authorization: Bearer <token>'")
        digest = hashlib.sha256(token.encode()).digest()
        # check every digest: the time taken does not say which token was close
        ok = False
        for d in self._digests:
            ok |= hmac.compare_digest(digest, d)
        if not ok:
            raise Unauthorized("the token is not valid for this server")
        return Identity("token")


def _epoch(iso: str | None) -> float | None:
    """The hub's ``expires_at`` (ISO 8601, UTC, ``Z``) as a Unix time; None: never expires."""
    if not iso:
        return None
    try:
        return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None


@dataclass(slots=True)
class _Cached:
    user: dict[str, Any]
    stored_at: float
    valid_until: float


class HubScopeAuth:
    """Hub service: the hub names the token's owner and scopes; each model needs its scope.

    The hub's answer for a token is kept ``cache_seconds`` (0: ask on every request), and
    never past the token's ``expires_at``. The expiry is read from the hub's token model with
    the caller's own token, which JupyterHub allows a token with its owner's default
    permissions; for a token restricted to fewer scopes it stays unknown, and the entry lives
    ``cache_seconds``. Concurrent requests with one uncached token share one hub lookup.
    """

    def __init__(
        self,
        hub_auth: Any = None,
        *,
        cache_seconds: float = 5.0,
        max_entries: int = 10_000,
        clock: Callable[[], float] = time.time,
        **hub_auth_config: Any,
    ) -> None:
        if hub_auth is None:
            from jupyterhub.services.auth import HubAuth  # lazy: only in hub mode

            # api_url / api_token default to JUPYTERHUB_API_URL / JUPYTERHUB_API_TOKEN;
            # HubAuth's own cache (300 s by default) is bypassed: see user_for_token below
            hub_auth = HubAuth(allow_token_in_url=False, **hub_auth_config)
        self.hub_auth = hub_auth
        self.cache_seconds = cache_seconds
        self.max_entries = max_entries
        self.clock = clock  # Unix time: compared with the hub's expires_at
        self._cache: dict[str, _Cached] = {}
        self._lookups: dict[str, asyncio.Future[dict[str, Any] | None]] = {}

    def _cached(self, key: str) -> dict[str, Any] | None:
        hit = self._cache.get(key)
        if hit is None:
            return None
        now = self.clock()
        # a clock that went back counts as expired too
        if hit.stored_at <= now < hit.valid_until:
            return hit.user
        del self._cache[key]
        return None

    def _store(
        self, key: str, user: dict[str, Any], stored_at: float, expires: float | None
    ) -> None:
        if self.cache_seconds <= 0:
            return
        valid_until = stored_at + self.cache_seconds
        if expires is not None:
            valid_until = min(valid_until, expires)
        if len(self._cache) >= self.max_entries:
            now = self.clock()
            for k in [k for k, c in self._cache.items() if not c.stored_at <= now < c.valid_until]:
                del self._cache[k]
            while len(self._cache) >= self.max_entries:  # still full: drop the oldest
                del self._cache[next(iter(self._cache))]
        self._cache[key] = _Cached(user, stored_at, valid_until)

    async def _token_expiry(self, token: str, user: dict[str, Any]) -> float | None:
        """The token's expires_at from the hub, or None when it has none or is not shown."""
        token_id = user.get("token_id")
        if not token_id or user.get("kind", "user") != "user":
            return None
        from jupyterhub.utils import url_path_join
        from tornado.web import HTTPError

        url = url_path_join(
            self.hub_auth.api_url, "users", quote(user["name"], safe=""), "tokens", token_id
        )
        try:
            # JupyterHub's own request helper (TLS settings, error handling); None on 403
            model = await self.hub_auth._api_request(
                "GET", url, headers={"Authorization": f"token {token}"}, allow_403=True
            )
        except HTTPError:  # how HubAuth reports 404s and an unreachable hub: expiry unknown
            return None
        return _epoch(model.get("expires_at")) if isinstance(model, dict) else None

    async def _lookup(self, key: str, token: str) -> dict[str, Any] | None:
        started = self.clock()
        # use_cache=False: HubAuth would keep the answer 300 s, past deletion and expiry
        user = await self.hub_auth.user_for_token(token, use_cache=False, sync=False)
        if not user:
            self._cache.pop(key, None)
            return None
        expires = await self._token_expiry(token, user) if self.cache_seconds > 0 else None
        self._store(key, user, started, expires)
        return user

    async def user_for_token(self, token: str) -> dict[str, Any] | None:
        """The hub's user model for ``token`` (with its ``scopes``), or None if refused."""
        key = hashlib.sha256(token.encode("utf8", "replace")).hexdigest()
        user = self._cached(key)
        if user is not None:
            return user
        pending = self._lookups.get(key)
        if pending is None:
            pending = asyncio.ensure_future(self._lookup(key, token))
            self._lookups[key] = pending
            pending.add_done_callback(lambda _: self._lookups.pop(key, None))
        return await asyncio.shield(pending)

    async def _user(self, headers: Any) -> dict[str, Any]:
        token = bearer_token(headers)
        if token is None:
            raise Unauthorized("send 'Authorization: token <JupyterHub API token>'")
        try:
            user = await self.user_for_token(token)
        except Exception as e:  # HubAuth raises tornado HTTPError when the hub is unreachable
            raise NotReady(
                "cannot check the token with JupyterHub right now; retry shortly",
                retry_after=5,
                details={"reason": type(e).__name__},
            ) from e
        if not user:
            raise Unauthorized(
                "JupyterHub does not recognise this token (it may have expired, been revoked, "
                "or its user deleted); get a new token from the hub's token page"
            )
        return user

    async def authorize(
        self, headers: Any, model: str | None, access: Access | None = None
    ) -> Identity:
        user = await self._user(headers)
        # /hub/api/user always names the token's user and groups (JupyterHub's identify
        # scopes), so the service needs no hub permission of its own for them
        scopes = frozenset(user.get("scopes") or ())
        ident = Identity(
            str(user.get("name", "?")),
            scopes,
            frozenset(user.get("groups") or ()),
            str(user.get("kind", "user")),
            # HubAuth checks no scopes: a token the user gave another service (identify
            # only) must not call the user's models; the hub lists the token's scopes
            service_access=bool({SERVICE_ACCESS_SCOPE, "access:services"} & scopes),
        )
        if model is not None and not may_predict(ident, model, access):
            raise refusal(ident, model, access)
        return ident
