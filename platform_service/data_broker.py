"""Data credentials, the service's side: issue a running server's credentials for a store
its user's groups are granted, renew them while the server runs, drop them when it stops,
and read the stores' usage counters into the audit.

The rules are ``data_grants`` and ``data_retention`` (pure); the stores are drivers
(``data_drivers``: built-ins ``postgresql``, ``s3``, others by entry point). Driver and
database calls run in worker threads; the clock is injected. The tick also deletes audit rows
older than ``data.audit.keep_days``, once an hour, in batches.
"""

from __future__ import annotations

import asyncio
import importlib
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from mlfactory.hub.platform_config import DataStore, PlatformConfig
from mlfactory.spawner.profiles import user_access
from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Engine

from . import data_retention
from .data_db import AUDIT_TIMES, DataCredential, DataCredentialEvent, delete_audit_batch
from .data_drivers import (
    ENTRY_POINT_GROUP,
    AdminUnavailable,
    Credentials,
    DataStoreDriver,
    read_admin_secret,
)
from .data_grants import (
    MAX_LIVE_PER_SERVER,
    Entitlement,
    Live,
    entitlement,
    expiry,
    no_grant_message,
    upkeep,
)
from .db import LedgerSession
from .hubapi import HubAPI

log = logging.getLogger("mlfactory.service.data")
# kind -> (module, class). A driver's module is imported when a store of its kind is
# configured: psycopg and boto3/botocore cost the service ~17 MiB resident otherwise.
BUILTIN_DRIVERS: dict[str, tuple[str, str]] = {
    "postgresql": ("mlfactory.service.data_postgres", "PostgresDriver"),
    "s3": ("mlfactory.service.data_s3", "S3Driver"),
}


def driver_class(kind: str) -> type | None:
    """The driver for ``kind``: a built-in, else the ``mlfactory.data_stores`` entry point."""
    if kind in BUILTIN_DRIVERS:
        module, name = BUILTIN_DRIVERS[kind]
        return getattr(importlib.import_module(module), name)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        if ep.name == kind:
            return ep.load()
    return None


class UnknownStore(LookupError):
    pass


class NoGrant(PermissionError):
    pass


class StoreUnavailable(RuntimeError):
    pass


@dataclass
class DataStoresInvalid(Exception):
    """Start-up problems, each ``data_stores[i].key: what is wrong``."""

    problems: list[str]

    def __str__(self) -> str:
        return "\n".join(self.problems)


def make_drivers(
    config: PlatformConfig, environ: dict[str, str] | None = None
) -> dict[str, DataStoreDriver]:
    """A driver per managed store; ``DataStoresInvalid`` with every problem's key path."""
    drivers, problems = {}, []
    for i, store in enumerate(config.data_stores):
        if not store.managed:
            continue
        cls = driver_class(store.kind)
        if cls is None:
            plugins = entry_points(group=ENTRY_POINT_GROUP).names
            known = ", ".join(sorted({*BUILTIN_DRIVERS, *plugins}))
            problems.append(
                f"data_stores[{i}].kind: no driver for {store.kind!r} issues credentials; "
                f"drivers: {known}"
            )
            continue
        try:
            drivers[store.name] = cls(store, read_admin_secret(store, environ))
        except AdminUnavailable as e:
            problems.append(f"data_stores[{i}].admin_credentials: {store.name}: {e}")
    if problems:
        raise DataStoresInvalid(problems)
    return drivers


class DataBroker:
    def __init__(
        self,
        config: PlatformConfig,
        engine: Engine,
        drivers: dict[str, DataStoreDriver],
        *,
        hub: HubAPI | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.stores: dict[str, DataStore] = {d.name: d for d in config.data_stores if d.managed}
        self.engine = engine
        self.drivers = drivers
        self.hub = hub
        self.clock = clock
        self._index = {d.name: i for i, d in enumerate(config.data_stores)}
        self._swept = False  # the first tick drops roles left by an earlier run
        self._audit_pass: float | None = None  # when the tick last ran the retention pass

    # --- start-up ---------------------------------------------------------------------

    async def check_all(self) -> None:
        """Check every store's admin credentials; ``DataStoresInvalid`` naming each key."""
        problems = []
        for name, driver in self.drivers.items():
            try:
                await asyncio.to_thread(driver.check_admin)
            except AdminUnavailable as e:
                problems.append(f"data_stores[{self._index[name]}].admin_credentials: {name}: {e}")
        if problems:
            raise DataStoresInvalid(problems)

    # --- what a user sees -------------------------------------------------------------

    def connections(self, groups: Iterable[str]) -> list[dict[str, Any]]:
        """The managed stores this user's groups are granted, with the grant (no secrets)."""
        groups = list(user_access(self.config, groups, False).groups)
        out = []
        for store in self.stores.values():
            e = entitlement(store, groups)
            if e is not None:
                out.append(
                    {
                        "name": store.name,
                        "kind": store.kind,
                        "description": store.description,
                        "access": e.access,
                        "groups": list(e.groups),
                        "prefixes": list(e.prefixes),
                        "ttl": store.ttl,
                    }
                )
        return out

    async def issue(
        self, store_name: str, user: str, server_name: str, groups: Iterable[str]
    ) -> dict[str, Any]:
        """Credentials for ``user``'s running server ``server_name`` on ``store_name``, per
        the grants of ``groups`` (the hub's answer now: a removed group grants nothing)."""
        store = self.stores.get(store_name)
        if store is None:
            raise UnknownStore(
                f"There is no managed data store {store_name!r}; "
                f"stores: {', '.join(self.stores) or 'none'}."
            )
        # the configured groups the hub has the user in now, else the default group: the
        # same groups the spawner's picker uses
        hub_groups = list(groups)
        groups = list(user_access(self.config, hub_groups, False).groups)
        grant = entitlement(store, groups)
        now = self.clock()
        if grant is None:
            await asyncio.to_thread(
                self._event, now, "refuse", store_name, user, server_name, None, "no grant"
            )
            raise NoGrant(no_grant_message(store_name, hub_groups or groups))
        driver = self.drivers[store_name]

        def work() -> dict[str, Any]:
            try:
                creds = driver.issue(user, server_name, grant, now, store.ttl)
            except AdminUnavailable as e:
                log.error("Data store %s: cannot issue credentials: %s", store_name, e)
                raise StoreUnavailable(
                    f"Data store {store_name!r} cannot issue credentials right now (its admin "
                    "connection failed); try again in a minute, and tell an admin if it lasts."
                ) from None
            try:
                self._record_issue(creds, store_name, user, server_name, grant, store.ttl, now)
            except Exception:
                # no row would ever let a tick drop this role: drop it now
                try:
                    driver.revoke(creds.principal)
                except Exception as e:
                    log.error(
                        "Data store %s: dropping %s failed: %s", store_name, creds.principal, e
                    )
                raise
            self._cap(store_name, user, server_name, now)
            return {
                "store": store_name,
                "kind": store.kind,
                "access": grant.access,
                "principal": creds.principal,
                "issued_at": now,
                "expires_at": creds.expires_at,
                "ttl": store.ttl,
                "credentials": creds.secret,
            }

        return await asyncio.to_thread(work)

    def _record_issue(
        self,
        creds: Credentials,
        store_name: str,
        user: str,
        server_name: str,
        grant: Entitlement,
        ttl: int,
        now: float,
    ) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                insert(DataCredential).values(
                    principal=creds.principal,
                    store=store_name,
                    user=user,
                    server_name=server_name,
                    groups=list(grant.groups),
                    access=grant.access,
                    roles=list(grant.roles),
                    prefixes=list(grant.prefixes),
                    ref=creds.ref,
                    ttl=ttl,
                    issued_at=now,
                    expires_at=creds.expires_at,
                )
            )
            conn.execute(
                insert(DataCredentialEvent).values(
                    at=now,
                    event="issue",
                    store=store_name,
                    user=user,
                    server_name=server_name,
                    principal=creds.principal,
                    detail=grant.access,
                )
            )

    def _cap(self, store: str, user: str, server_name: str, now: float) -> None:
        """Keep at most ``MAX_LIVE_PER_SERVER`` live credentials per server and store: a
        client asking in a loop would otherwise pile up roles (and their connections)."""
        live = self._live(
            DataCredential.store == store,
            DataCredential.user == user,
            DataCredential.server_name == server_name,
            newest_first=True,
        )
        for credential in live[MAX_LIVE_PER_SERVER:]:
            self._drop(credential, now, "replaced")

    # --- upkeep -----------------------------------------------------------------------

    async def running_servers(self) -> set[tuple[str, str]] | None:
        """``(user, server_name)`` of every server the hub says runs; None if it did not answer."""
        running, _ = await self.hub_view()
        return running

    async def hub_view(
        self,
    ) -> tuple[set[tuple[str, str]] | None, dict[str, tuple[str, ...]] | None]:
        """The running servers and, per user running one, the groups the grants read (as at
        an issue), from one listing; ``(None, None)`` if the hub did not answer."""
        if self.hub is None:
            return None, None
        try:
            out, groups = set(), {}
            async for u in self.hub.users(state="active"):
                for name, s in (u.get("servers") or {}).items():
                    if s.get("ready") or s.get("pending"):
                        out.add((u["name"], name))
                        groups[u["name"]] = tuple(
                            user_access(self.config, u.get("groups") or [], False).groups
                        )
            return out, groups
        except Exception as e:  # a restarting hub: drop nothing for being stopped
            log.warning("The hub did not answer (%s); keeping data credentials as they are", e)
            return None, None

    def live(self) -> list[Live]:
        # every store's, also of stores taken out of the config: the tick drops those
        return self._live()

    def _live(self, *where: Any, newest_first: bool = False) -> list[Live]:
        """The credentials not dropped yet (narrowed by ``where``)."""
        query = select(
            DataCredential.principal,
            DataCredential.store,
            DataCredential.user,
            DataCredential.server_name,
            DataCredential.expires_at,
            DataCredential.ttl,
            DataCredential.issued_at,
            DataCredential.access,
            DataCredential.groups,
            DataCredential.roles,
            DataCredential.prefixes,
        ).where(DataCredential.dropped_at.is_(None), *where)
        if newest_first:
            query = query.order_by(DataCredential.issued_at.desc(), DataCredential.id.desc())
        with self.engine.connect() as conn:
            rows = conn.execute(query).all()
        return [
            Live(
                *r[:8],
                groups=tuple(r.groups or ()),
                roles=None if r.roles is None else tuple(r.roles),
                prefixes=None if r.prefixes is None else tuple(r.prefixes),
            )
            for r in rows
        ]

    async def tick(self) -> None:
        """Renew the credentials of running servers, drop the others, the expired and those
        whose grant was lost or moved to other roles or prefixes, then read the stores'
        usage into the audit, and once an hour delete the audit past its retention. One
        credential or store failing is logged and skipped: the others are still kept up."""
        # live first: a server that starts and gets credentials while the hub is read is
        # then not in this tick's list, rather than in it and missing from ``running``
        if not self._swept:
            await asyncio.to_thread(self._sweep)
            self._swept = True
        live = await asyncio.to_thread(self.live)
        running, groups = await self.hub_view()
        now = self.clock()
        plan = upkeep(live, running, now, self.stores, groups)
        for c in plan.renew:
            await asyncio.to_thread(self._renew, c, now)
        for c, why in plan.drop:
            await asyncio.to_thread(self._drop, c, now, why)
        # last, so that a store's statistics failing stops nothing above; the just dropped
        # too: pg_stat_statements keeps a dropped role's counts under its oid
        counted = [c for c in live if c.store in self.drivers]
        await asyncio.to_thread(self._collect_usage, counted)
        if data_retention.pass_due(self._audit_pass, now):
            self._audit_pass = now
            try:
                removed = await self.expire_audit(data_retention.MAX_BATCHES_PER_TICK)
            except Exception as e:  # e.g. the database busy: the next hour tries again
                log.warning("Deleting the data audit past its retention failed: %s", e)
            else:
                if removed.more:  # a backlog (the first pass after an upgrade): next tick
                    self._audit_pass = None

    async def expire_audit(self, max_batches: int | None = None) -> data_retention.Removed:
        """Delete the audit rows older than ``data.audit.keep_days`` (credentials dropped
        that long ago, events that old; 0 keeps all), one batch per transaction, at most
        ``max_batches`` of them (None: all), and log what went. Returns the counts, and
        whether rows were left for another pass."""
        keep_days = self.config.data.audit.keep_days
        keep_s = data_retention.keep_seconds(keep_days)
        if keep_s is None:
            return data_retention.Removed()
        bound = data_retention.cutoff(keep_s, self.clock())
        counts, batches, more, full = [], 0, False, False
        for column in AUDIT_TIMES:
            total = 0
            while not more:
                if max_batches is not None and batches >= max_batches:
                    more = True
                    break
                if full:  # let waiting writers in before the next batch: pacing, not a wait
                    await asyncio.sleep(data_retention.PAUSE_S)
                # one worker call per batch: other writers get the lock in between
                n = await asyncio.to_thread(
                    delete_audit_batch, self.engine, column, bound, data_retention.BATCH
                )
                batches += 1 if n else 0  # a table found empty costs no batch of the budget
                total += n
                full = n == data_retention.BATCH
                if not full:
                    break
            counts.append(total)
        removed = data_retention.Removed(*counts, more=more)
        if removed:
            log.info("%s", removed.message(keep_days, bound))
        return removed

    async def session_ended(self, key: str) -> int:
        """Drop at once the credentials of the server whose ledger session ``key`` just
        ended (the spawner's notice at a stop, an exit or a failed start), rather than at
        the next tick. Only those issued since that session started: a later session of the
        same server keeps its own. Returns how many were dropped; 0 for an unknown key."""
        now = self.clock()

        def mine() -> list[Live]:
            with self.engine.connect() as conn:
                session = conn.execute(
                    select(
                        LedgerSession.user, LedgerSession.server_name, LedgerSession.started
                    ).where(LedgerSession.key == key)
                ).first()
                if session is None:
                    return []
                rows = conn.execute(
                    select(
                        DataCredential.principal,
                        DataCredential.store,
                        DataCredential.user,
                        DataCredential.server_name,
                        DataCredential.expires_at,
                        DataCredential.ttl,
                    ).where(
                        DataCredential.dropped_at.is_(None),
                        DataCredential.user == session.user,
                        DataCredential.server_name == session.server_name,
                        DataCredential.issued_at >= session.started,
                    )
                ).all()
            return [Live(*r) for r in rows if r[1] in self.drivers]

        ended = await asyncio.to_thread(mine)
        for c in ended:
            await asyncio.to_thread(self._drop, c, now, "server stopped")
        # the tick no longer sees these: read their last counts into the audit now
        await asyncio.to_thread(self._collect_usage, ended)
        return len(ended)

    def _renew(self, c: Live, now: float) -> None:
        until = expiry(now, c.ttl)
        try:
            if not self.drivers[c.store].renew(c.principal, until):
                return
        except Exception as e:  # e.g. a role dropped by hand: it expires, then is dropped
            log.warning("Data store %s: renewing %s failed: %s", c.store, c.principal, e)
            return
        with self.engine.begin() as conn:
            conn.execute(
                update(DataCredential)
                .where(DataCredential.principal == c.principal)
                .values(expires_at=until)
            )
            self._event_in(conn, now, "renew", c.store, c.user, c.server_name, c.principal, None)

    def _drop(self, c: Live, now: float, why: str) -> None:
        driver = self.drivers.get(c.store)
        if driver is None:
            log.error(
                "Data store %s is no longer managed: its role %s was not dropped and stays "
                "until its expiry; drop it by hand if it must end sooner",
                c.store,
                c.principal,
            )
        else:
            try:
                driver.revoke(c.principal)
            except Exception as e:  # kept live: the next tick tries again
                log.warning("Data store %s: dropping %s failed: %s", c.store, c.principal, e)
                return
        with self.engine.begin() as conn:
            done = conn.execute(
                update(DataCredential)
                .where(
                    DataCredential.principal == c.principal,
                    DataCredential.dropped_at.is_(None),
                )
                .values(dropped_at=now, drop_reason=why)
            )
            if not done.rowcount:
                return  # dropped meanwhile (a stop notice and a tick at once): one event
            self._event_in(conn, now, "drop", c.store, c.user, c.server_name, c.principal, why)

    def _sweep(self) -> None:
        """Drop issued roles no live credential row knows (a crash between creating a role
        and recording it); drivers without ``orphans`` have none to sweep."""
        found: dict[str, str] = {}
        for store, driver in self.drivers.items():
            orphans = getattr(driver, "orphans", None)
            if orphans is None:
                continue
            try:
                found.update((p, store) for p in orphans())
            except Exception as e:
                log.warning("Data store %s: listing issued roles failed: %s", store, e)
        if not found:
            return
        known = {c.principal for c in self.live()}  # read after listing: a role issued
        for principal, store in found.items():  # meanwhile is recorded by now
            if principal in known:
                continue
            try:
                self.drivers[store].revoke(principal)
                log.warning("Data store %s: dropped %s, never recorded", store, principal)
            except Exception as e:
                log.warning("Data store %s: dropping %s failed: %s", store, principal, e)

    def _collect_usage(self, live: list[Live]) -> None:
        by_store: dict[str, list[str]] = {}
        for c in live:
            by_store.setdefault(c.store, []).append(c.principal)
        for store, principals in by_store.items():
            with self.engine.connect() as conn:
                refs = dict(
                    conn.execute(
                        select(DataCredential.principal, DataCredential.ref).where(
                            DataCredential.principal.in_(principals)
                        )
                    ).all()
                )
            try:
                counted = self.drivers[store].usage(refs)
            except Exception as e:  # e.g. pg_stat_statements created but not preloaded
                log.warning("Data store %s: reading usage failed: %s", store, e)
                continue
            if not counted:
                continue
            with self.engine.begin() as conn:
                for principal, u in counted.items():
                    conn.execute(
                        update(DataCredential)
                        .where(DataCredential.principal == principal)
                        .values(queries=u.queries, rows_read=u.rows)
                    )

    def _event(self, *args: Any) -> None:
        with self.engine.begin() as conn:
            self._event_in(conn, *args)

    @staticmethod
    def _event_in(conn, at, event, store, user, server_name, principal, detail) -> None:
        conn.execute(
            insert(DataCredentialEvent).values(
                at=at,
                event=event,
                store=store,
                user=user,
                server_name=server_name,
                principal=principal,
                detail=detail,
            )
        )

    # --- the audit --------------------------------------------------------------------

    async def usage(
        self,
        *,
        user: str | None = None,
        group: str | None = None,
        store: str | None = None,
        users: set[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Per user and store: credentials issued, first and last issue, queries and rows
        the store counted. ``users``: only these (a filtered scope); ``group``: credentials
        issued through that group's grant."""
        # the numbers the tick stored: asking each store here would load production
        # databases at every dashboard view and fail with the slowest store

        def work() -> list[dict[str, Any]]:
            q = select(
                DataCredential.user,
                DataCredential.store,
                func.count(),
                func.min(DataCredential.issued_at),
                func.max(DataCredential.issued_at),
                func.sum(DataCredential.queries),
                func.sum(DataCredential.rows_read),
                func.count(DataCredential.dropped_at),
            ).group_by(DataCredential.user, DataCredential.store)
            if user:
                q = q.where(DataCredential.user == user)
            if store:
                q = q.where(DataCredential.store == store)
            if users is not None:
                q = q.where(DataCredential.user.in_(sorted(users)))
            with self.engine.connect() as conn:
                rows = conn.execute(q.order_by(DataCredential.store, DataCredential.user)).all()
                groups_of: dict[tuple[str, str], set[str]] = {}
                for u, s, gs in conn.execute(
                    select(DataCredential.user, DataCredential.store, DataCredential.groups)
                ).all():
                    groups_of.setdefault((u, s), set()).update(gs or [])
            out = []
            for u, s, n, first, last, queries, rows_read, dropped in rows:
                gs = sorted(groups_of.get((u, s), ()))
                if group and group not in gs:
                    continue
                out.append(
                    {
                        "user": u,
                        "store": s,
                        "groups": gs,
                        "credentials": n,
                        "live": n - dropped,
                        "first_issued": first,
                        "last_issued": last,
                        "queries": queries,
                        "rows": rows_read,
                    }
                )
            return out

        return await asyncio.to_thread(work)

    def close(self) -> None:
        for d in self.drivers.values():
            close = getattr(d, "close", None)
            if close:
                close()


async def drop_at_session_end(settings: dict[str, Any], key: str) -> None:
    """The spawner's end-of-session notice (``gate_api``): drop that server's data
    credentials now. Best effort: the broker's tick drops whatever this misses."""
    broker: DataBroker | None = settings.get("data_broker")
    if broker is None:
        return
    try:
        dropped = await broker.session_ended(key)
    except Exception:  # never fail the spawner's notice over the data stores
        log.exception("Dropping the data credentials of session %s failed", key)
        return
    if dropped:
        log.info("Dropped %d data credential(s) of session %s at its end", dropped, key)
