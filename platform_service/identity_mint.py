"""Servers' managed identities at the hub: minting one (a token of the server's user with the
identity's scopes, note and expiry, through the hub's REST API and the service's ``tokens``
scope), recognising one a kernel shows, and revoking them. The rules are ``identity``."""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from sqlalchemy import select
from tornado.httpclient import HTTPClientError

from . import identity
from .db import LedgerSession
from .hubapi import HubAPI
from .identity import NotAnIdentity, Policy, TokenFacts
from .periods import parse_iso

log = logging.getLogger("mlfactory.service.identity")
SETTINGS_KEY = "identity_mint"
FACTS_CACHE = 10_000  # token ids → facts; ids are never reused, so entries never go stale


class HubUnavailable(RuntimeError):
    """The hub did not answer (down, restarting): the server keeps its identity and retries."""


def facts_of(token: dict[str, Any]) -> TokenFacts:
    expires = token.get("expires_at")
    return TokenFacts(
        note=str(token.get("note") or ""),
        created=parse_iso(token["created"]),
        expires_at=parse_iso(expires) if expires else None,
    )


class IdentityMint:
    def __init__(
        self,
        hub: HubAPI,
        policy: Policy,
        *,
        service: str = "mlfactory",
        clock: Callable[[], float],
    ) -> None:
        self.hub = hub
        self.policy = policy
        self.service = service
        self.clock = clock
        self._facts: dict[str, TokenFacts] = {}

    async def _call(self, method: str, path: str, body: Any = None) -> Any:
        try:
            return await self.hub.request(method, path, body)
        except HTTPClientError as e:
            if e.code == 599:
                raise HubUnavailable(f"the hub did not answer {method} {path}") from None
            raise
        except OSError as e:
            raise HubUnavailable(f"the hub cannot be reached: {e}") from None

    def _tokens(self, user: str) -> str:
        return f"/users/{quote(user, safe='')}/tokens"

    async def mint(self, user: str, server: str) -> dict[str, Any]:
        """A new identity for ``user``'s server ``server``; the hub sets its expiry."""
        token = await self._call(
            "POST",
            self._tokens(user),
            {
                "scopes": identity.scopes(user, server, self.service),
                "expires_in": int(self.policy.lifetime),
                "note": identity.note(user, server),
            },
        )
        self._remember(token["id"], facts_of(token))
        log.info("Minted identity %s for %s/%s", token["id"], user, server)
        return identity.minted_answer(token, self.clock(), self.policy)

    def _remember(self, token_id: str, facts: TokenFacts) -> None:
        if len(self._facts) >= FACTS_CACHE:
            self._facts.clear()
        self._facts[token_id] = facts

    async def facts(self, user: str, token_id: str) -> TokenFacts | None:
        """What the hub keeps about one of ``user``'s tokens (None: not theirs, or gone)."""
        known = self._facts.get(token_id)
        if known is not None:
            return known
        try:
            token = await self._call("GET", f"{self._tokens(user)}/{quote(token_id, safe='')}")
        except HTTPClientError as e:
            if e.code == 404:
                return None
            raise
        facts = facts_of(token)
        self._remember(token_id, facts)
        return facts

    async def recognise(self, model: dict[str, Any]) -> str:
        """The server whose identity the caller's token is (``model``: the hub's answer for
        the token, with ``token_id``), or NotAnIdentity. The hub has already checked that
        the token is valid now."""
        if identity.bound_server(model) is None or not model.get("token_id"):
            raise NotAnIdentity("the token does not name exactly one of your servers")
        facts = await self.facts(model["name"], model["token_id"])
        if facts is None:
            raise NotAnIdentity("the hub does not know this token")
        return identity.recognise(model, facts, self.policy.lifetime)

    async def revoke(self, user: str, server: str, token_id: str) -> bool:
        """Revoke one identity of ``server``; False if it is not one (or already gone)."""
        facts = await self.facts(user, token_id)
        if facts is None or facts.note != identity.note(user, server):
            return False
        return await self._delete(user, token_id)

    async def _delete(self, user: str, token_id: str) -> bool:
        try:
            await self._call("DELETE", f"{self._tokens(user)}/{quote(token_id, safe='')}")
        except HTTPClientError as e:
            if e.code == 404:
                return False
            raise
        log.info("Revoked identity %s of %s", token_id, user)
        return True

    async def revoke_all(self, user: str, server: str, before: float | None = None) -> int:
        """Revoke every identity of ``user``'s ``server`` (the server stops); with
        ``before``, only those minted earlier (a later start of the server keeps its own)."""
        try:
            listed = await self._call("GET", self._tokens(user))
        except HTTPClientError as e:
            if e.code == 404:  # the user is gone, and their tokens with them
                return 0
            raise
        mine = identity.note(user, server)
        done = 0
        for token in (listed or {}).get("api_tokens") or []:
            if token.get("note") != mine:
                continue
            if before is not None and parse_iso(token["created"]) > before:
                continue
            if await self._delete(user, token["id"]):
                done += 1
        return done


def identity_mint(settings: dict[str, Any]) -> IdentityMint | None:
    """The service's one ``IdentityMint``, made on first use from the accountant's hub
    client and ``data.identity``; None without a hub (tests of other parts)."""
    mint = settings.get(SETTINGS_KEY)
    if mint is None:
        accountant = settings["accountant"]
        if accountant.hub is None:
            return None
        cfg = accountant.config.data.identity
        mint = settings[SETTINGS_KEY] = IdentityMint(
            accountant.hub,
            Policy(rotate=cfg.rotate, lifetime=cfg.lifetime_s, overlap=cfg.overlap),
            service=os.environ.get("JUPYTERHUB_SERVICE_NAME", "mlfactory"),
            clock=accountant.clock,
        )
    return mint


async def revoke_at_session_end(settings: dict[str, Any], key: str) -> None:
    """The spawner's end-of-session notice (``gate_api``): revoke the identities of the
    server whose session ``key`` ended. The server revokes them itself on a clean stop;
    this covers a server that was killed. Best effort: they end at their expiry anyway."""
    mint = identity_mint(settings)
    if mint is None:
        return
    engine = settings["accountant"].store.engine

    def session() -> tuple[str, str] | None:
        with engine.connect() as conn:
            row = conn.execute(
                select(LedgerSession.user, LedgerSession.server_name).where(
                    LedgerSession.key == key
                )
            ).first()
        return (row[0], row[1]) if row else None

    try:
        found = await asyncio.to_thread(session)
        if found is None:
            return
        revoked = await mint.revoke_all(*found, before=mint.clock())
    except Exception as e:  # never fail the spawner's notice over the hub's tokens
        log.warning("Revoking the identities of session %s failed: %s", key, e)
        return
    if revoked:
        log.info("Revoked %d identity token(s) of session %s at its end", revoked, key)
