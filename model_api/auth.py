"""Who may call a model: a bearer token (standalone) or JupyterHub scopes (hub service).

Tokens are read from the ``Authorization`` header only, never from the URL (URLs end up in
logs and browser history). Behind JupyterHub the server runs as a hub service and asks the hub
who a token belongs to with ``jupyterhub.services.auth.HubAuth``; jupyterhub is imported only
in that mode, so the library works without Jupyter installed.

Scopes (JupyterHub custom scopes, declared in the hub config; see ``hub_custom_scopes``):
``custom:mlfactory:models:<name>:predict`` lets a token use one model (metadata, schema,
predict, infer); ``custom:mlfactory:models:predict`` lets it use every model of the service.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .errors import Forbidden, NotReady, Unauthorized

SCOPE_PREFIX = "custom:mlfactory:models"
ALL_MODELS_SCOPE = f"{SCOPE_PREFIX}:predict"
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


@dataclass(frozen=True, slots=True)
class Identity:
    name: str
    scopes: frozenset[str] | None = None  # None: every model of this server

    def may_use(self, model: str) -> bool:
        s = self.scopes
        return s is None or model_scope(model) in s or ALL_MODELS_SCOPE in s


def bearer_token(headers: Any) -> str | None:
    m = _BEARER.match(headers.get("Authorization", ""))
    return m.group(1) if m else None


class Authorizer(Protocol):
    async def authorize(self, headers: Any, model: str | None) -> Identity:
        """Return the caller or raise Unauthorized/Forbidden. ``model=None``: any identity
        will do (listing models, which is then filtered with ``Identity.may_use``)."""


class NoAuth:
    """Anyone may call. Only for a server bound to localhost in a trusted setting."""

    async def authorize(self, headers: Any, model: str | None) -> Identity:
        return Identity("anonymous")


class TokenAuth:
    """Standalone: ``Authorization: Bearer <token>`` with one of the configured tokens."""

    def __init__(self, tokens: Iterable[str]) -> None:
        # keep digests only, and compare in constant time
        self._digests = [hashlib.sha256(t.encode()).digest() for t in tokens if t]
        if not self._digests:
            raise ValueError("token auth needs at least one non-empty token")

    async def authorize(self, headers: Any, model: str | None) -> Identity:
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


class HubScopeAuth:
    """Hub service: the hub names the token's owner and scopes; each model needs its scope."""

    def __init__(self, hub_auth: Any = None, **hub_auth_config: Any) -> None:
        if hub_auth is None:
            from jupyterhub.services.auth import HubAuth  # lazy: only in hub mode

            # api_url / api_token default to JUPYTERHUB_API_URL / JUPYTERHUB_API_TOKEN
            hub_auth = HubAuth(allow_token_in_url=False, **hub_auth_config)
        self.hub_auth = hub_auth

    async def _user(self, headers: Any) -> dict[str, Any]:
        token = bearer_token(headers)
        if token is None:
            raise Unauthorized("send 'Authorization: token <JupyterHub API token>'")
        try:
            user = await self.hub_auth.user_for_token(token, sync=False)
        except Exception as e:  # HubAuth raises tornado HTTPError when the hub is unreachable
            raise NotReady(
                "cannot check the token with JupyterHub right now; retry shortly",
                retry_after=5,
                details={"reason": type(e).__name__},
            ) from e
        if not user:
            raise Unauthorized("JupyterHub does not recognise this token")
        return user

    async def authorize(self, headers: Any, model: str | None) -> Identity:
        user = await self._user(headers)
        ident = Identity(str(user.get("name", "?")), frozenset(user.get("scopes") or ()))
        if model is not None and not ident.may_use(model):
            raise Forbidden(
                f"{ident.name} may not use the model {model!r}: the token needs the scope "
                f"{model_scope(model)} or {ALL_MODELS_SCOPE}",
                {"required_scopes": [model_scope(model), ALL_MODELS_SCOPE]},
            )
        return ident
