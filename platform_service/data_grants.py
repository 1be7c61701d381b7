"""Data grants, pure: which grant a user's groups hold on a store, the safe name of a
per-server database role, and when issued credentials are renewed or dropped.

No I/O and no clock of its own: callers pass ``now``. The service's broker (``data_broker``)
decides with these; a notebook's refresh rule is ``mlfactory.data.refresh_due``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable
from dataclasses import dataclass

from mlfactory.hub.platform_config import DataStore

MAX_TTL = 3600  # s: the ceiling for a credential's life
ROLE_PREFIX = "mlf_"
# live credentials per server and store: the client asks again near expiry, so two overlap;
# a client asking in a loop gets its oldest dropped instead of piling up roles
MAX_LIVE_PER_SERVER = 3
_UNSAFE = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class Entitlement:
    """What a user may do with a store: the strongest access their groups hold, the
    database group roles and the S3 prefixes of every grant they hold."""

    store: str
    access: str  # "read" | "read-write"
    groups: tuple[str, ...]
    roles: tuple[str, ...]
    prefixes: tuple[str, ...]


def default_role(store: str, access: str) -> str:
    """The group role a grant uses when the config names none: ``mlf_<store>_<read|rw>``."""
    return f"{ROLE_PREFIX}{store.replace('-', '_')}_{'rw' if access == 'read-write' else 'read'}"


def entitlement(store: DataStore, groups: Iterable[str]) -> Entitlement | None:
    """The user's entitlement on a managed ``store`` from their ``groups``; None: no grant.

    A user in several granted groups gets every role and prefix of those grants; the access
    shown is the strongest. Membership is read at each issue, so a user whose group was
    removed gets nothing at the next issue.
    """
    mine = set(groups)
    held = [g for g in store.grants if g.group in mine]
    if not held:
        return None
    access = "read-write" if any(g.access == "read-write" for g in held) else "read"
    roles = tuple(dict.fromkeys(g.role or default_role(store.name, g.access) for g in held))
    prefixes = tuple(dict.fromkeys(p for g in held for p in g.prefixes))
    return Entitlement(store.name, access, tuple(g.group for g in held), roles, prefixes)


def no_grant_message(store: str, groups: Iterable[str]) -> str:
    shown = ", ".join(sorted(groups)) or "none"
    return (
        f"You have no grant on data store {store!r} (your groups: {shown}). Ask a data admin "
        f"to add a grant for one of your groups to data_stores[{store}] in mlfactory.yaml."
    )


def role_name(user: str, server_name: str, nonce: str) -> str:
    """A login role name for one issue to one server: ``mlf_<user>_<hash>``, at most 63
    bytes of ``[a-z0-9_]`` (PostgreSQL's limit), so any hub user name is safe in it. The
    hash covers the exact user, server and ``nonce`` (random per issue): names that read
    the same after the lowercasing and truncation still differ."""
    readable = _UNSAFE.sub("_", user.lower()).strip("_")[:24] or "user"
    digest = hashlib.sha256(f"{user}\0{server_name}\0{nonce}".encode()).hexdigest()[:16]
    return f"{ROLE_PREFIX}{readable}_{digest}"


def expiry(now: float, ttl: int) -> float:
    """When credentials issued at ``now`` expire (never later than an hour on)."""
    return now + min(ttl, MAX_TTL)


def renewal_due(expires_at: float, now: float, ttl: int) -> bool:
    """Whether the service renews a live server's credential now: in the last half of its
    life, so that one missed tick still leaves it valid."""
    return expires_at - now <= min(ttl, MAX_TTL) / 2


@dataclass(frozen=True)
class Live:
    """One issued credential the service has not dropped yet; ``access`` and ``groups``: the
    entitlement it was issued for ("" and () when not read); ``roles`` and ``prefixes``: the
    database group roles and S3 prefixes the store was asked to grant (None: not recorded,
    as for credentials issued before migration 0010)."""

    principal: str
    store: str
    user: str
    server_name: str
    expires_at: float
    ttl: int
    issued_at: float = 0.0
    access: str = ""
    groups: tuple[str, ...] = ()
    roles: tuple[str, ...] | None = None
    prefixes: tuple[str, ...] | None = None

    @property
    def scope_unknown(self) -> bool:
        """Read with its entitlement, but issued before roles and prefixes were recorded."""
        return bool(self.access) and self.roles is None and self.prefixes is None


@dataclass
class Upkeep:
    renew: list[Live]
    drop: list[tuple[Live, str]]  # and why


def grant_change(c: Live, now_held: Entitlement | None) -> str | None:
    """Why the entitlement held now no longer covers what ``c`` was issued for, or None
    when it still does. Covered: every group it was issued through still grants, at no
    weaker access, and through the same database roles and S3 prefixes (an admin renaming a
    grant's ``role:``, or changing its prefixes, while the user's groups stay the same). A
    widened grant keeps the credential (the next issue gets the new roles); a narrowed,
    lost or moved one does not."""
    if not c.access:
        return None  # issued-for unknown: the caller did not read it
    if now_held is None or not set(c.groups) <= set(now_held.groups):
        return "grant changed"
    if c.access == "read-write" and now_held.access != "read-write":
        return "grant changed"
    # a login role stays a member of the group roles it was created in, whatever the config
    # says now: moving it would leave sessions that ran SET ROLE on the old role, so it goes
    if c.roles is not None and not set(c.roles) <= set(now_held.roles):
        return "role changed"
    if c.prefixes is not None and not set(c.prefixes) <= set(now_held.prefixes):
        return "prefixes changed"
    return None


def still_granted(c: Live, now_held: Entitlement | None) -> bool:
    """Whether the entitlement held now covers what ``c`` was issued for (``grant_change``)."""
    return grant_change(c, now_held) is None


def upkeep(
    live: Iterable[Live],
    running: set[tuple[str, str]] | None,
    now: float,
    stores: dict[str, DataStore] | None = None,
    groups: dict[str, Iterable[str]] | None = None,
) -> Upkeep:
    """What the periodic tick does with each live credential.

    Dropped: those of stores no longer managed (``stores``: the managed stores now, None:
    not checked), of servers that no longer run (``running``: the hub's ``(user,
    server_name)`` pairs, None when the hub did not answer: then nothing is dropped for that
    reason nor for a grant), the expired, and those whose user's ``groups`` now (each running
    user's groups as the grants read them) no longer grant what they were issued for, or no
    longer through the roles and prefixes it holds (``grant_change``).
    Renewed when due: only the newest credential of each server and store, so that a client
    asking again in time does not keep every older role alive too, and never one whose roles
    were not recorded (issued before 0010): it ends at its expiry, within the store's ttl,
    and the client's next ask records them.
    """
    live = list(live)
    newest: dict[tuple[str, str, str], Live] = {}
    for c in live:
        key = (c.user, c.server_name, c.store)
        if key not in newest or c.issued_at > newest[key].issued_at:
            newest[key] = c
    plan = Upkeep([], [])
    for c in live:
        if stores is not None and c.store not in stores:
            plan.drop.append((c, "store removed"))
        elif running is not None and (c.user, c.server_name) not in running:
            plan.drop.append((c, "server stopped"))
        elif c.expires_at <= now:
            plan.drop.append((c, "expired"))
        elif (
            running is not None
            and stores is not None
            and groups is not None
            and (why := grant_change(c, entitlement(stores[c.store], groups.get(c.user, ()))))
        ):
            plan.drop.append((c, why))
        elif (
            running is not None
            and renewal_due(c.expires_at, now, c.ttl)
            and newest[(c.user, c.server_name, c.store)] is c
            and not c.scope_unknown
        ):
            plan.renew.append(c)
    return plan
