"""The ``postgresql`` data-store driver: one short-lived login role per server and issue
(HashiCorp Vault's database-engine pattern, done by the platform service).

What the admin sets up once (see docs): an admin role with ``CREATEROLE`` (PostgreSQL 16+:
and ``ADMIN OPTION`` on each grant's group role), its connection string in the file or
environment variable the config names, and per grant a ``NOLOGIN`` group role holding the
table and schema privileges (``GRANT SELECT ON ALL TABLES IN SCHEMA a TO mlf_dw_read``). Each
issued role is ``LOGIN``, ``VALID UNTIL`` at most an hour on, and a member of its grants'
group roles only. All SQL is composed with ``psycopg.sql``; nothing here touches the event
loop (the broker runs it in worker threads).
"""

from __future__ import annotations

import contextlib
import queue
import secrets
import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import psycopg
from mlfactory.hub.platform_config import DataStore
from psycopg import sql
from sqlalchemy.engine import make_url

from .data_drivers import AdminUnavailable, Credentials, Usage
from .data_grants import Entitlement, default_role, expiry, role_name

POOL_SIZE = 8  # admin connections kept open: issuing is a few statements on one of them
CONNECT_TIMEOUT_S = 5


def _ts(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).isoformat()


class PostgresDriver:
    """Issues per-server login roles on one PostgreSQL database."""

    def __init__(self, store: DataStore, admin_secret: str) -> None:
        self.store = store
        self.admin_secret = admin_secret
        self._idle: queue.LifoQueue[psycopg.Connection] = queue.LifoQueue()
        self._lock = threading.Lock()
        self.has_statements: bool | None = None  # pg_stat_statements, asked once

    # --- admin connections ------------------------------------------------------------

    def _connect(self) -> psycopg.Connection:
        try:
            return psycopg.connect(
                self.admin_secret, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
            )
        except psycopg.Error as e:
            # the message names host and user, never the password
            raise AdminUnavailable(f"cannot connect as the admin: {str(e).strip()}") from None

    @contextlib.contextmanager
    def admin(self) -> Iterator[psycopg.Connection]:
        try:
            conn = self._idle.get_nowait()
        except queue.Empty:
            conn = self._connect()
        try:
            yield conn
        except psycopg.OperationalError as e:
            conn.close()  # a dropped connection is not put back
            raise AdminUnavailable(f"the admin connection failed: {str(e).strip()}") from None
        except BaseException:
            conn.close()
            raise
        else:
            if self._idle.qsize() < POOL_SIZE and not conn.closed:
                self._idle.put(conn)
            else:
                conn.close()

    def close(self) -> None:
        while True:
            try:
                self._idle.get_nowait().close()
            except queue.Empty:
                return

    # --- the plugin interface ---------------------------------------------------------

    def check_admin(self) -> None:
        roles = [g.role or default_role(self.store.name, g.access) for g in self.store.grants]
        with self.admin() as conn:
            row = conn.execute(
                "SELECT rolsuper OR rolcreaterole FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            if not row or not row[0]:
                raise AdminUnavailable("the admin role needs CREATEROLE to issue login roles")
            found = {
                r[0]
                for r in conn.execute(
                    "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s)", [roles]
                ).fetchall()
            }
            missing = [r for r in roles if r not in found]
            if missing:
                raise AdminUnavailable(
                    f"the group role(s) {', '.join(missing)} do not exist; create them "
                    "(CREATE ROLE ... NOLOGIN) and grant them the tables"
                )

    def issue(
        self, user: str, server_name: str, grant: Entitlement, now: float, ttl: int
    ) -> Credentials:
        name = role_name(user, server_name, secrets.token_hex(8))
        password = secrets.token_urlsafe(24)
        until = expiry(now, ttl)
        # ROLE CURRENT_USER: the admin becomes a member of the new role, which lets it end
        # the role's sessions and hand its objects over at the drop (PostgreSQL 16 gives a
        # creator ADMIN OPTION only). One statement: the role exists whole or not at all.
        stmt = sql.SQL(
            "CREATE ROLE {name} LOGIN INHERIT PASSWORD {pw} VALID UNTIL {until} "
            "CONNECTION LIMIT 20 IN ROLE {roles} ROLE CURRENT_USER"
        ).format(
            name=sql.Identifier(name),
            pw=sql.Literal(password),
            until=sql.Literal(_ts(until)),
            roles=sql.SQL(", ").join(sql.Identifier(r) for r in grant.roles),
        )
        with self.admin() as conn:
            conn.execute(stmt)
            oid = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", [name])
            ref = int(oid.fetchone()[0])
        url = make_url(self.store.url).set(
            drivername="postgresql+psycopg", username=name, password=password
        )
        return Credentials(
            principal=name,
            expires_at=until,
            ref=ref,
            secret={
                "url": url.render_as_string(hide_password=False),
                "user": name,
                "password": password,
                "roles": list(grant.roles),
            },
        )

    def renew(self, principal: str, expires_at: float) -> bool:
        with self.admin() as conn:
            conn.execute(
                sql.SQL("ALTER ROLE {} VALID UNTIL {}").format(
                    sql.Identifier(principal), sql.Literal(_ts(expires_at))
                )
            )
        return True

    def revoke(self, principal: str) -> None:
        with self.admin() as conn:
            exists = conn.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", [principal])
            if exists.fetchone() is None:
                return
            # no new logins, then end its sessions: DROP ROLE fails while they last
            conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(sql.Identifier(principal)))
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                [principal],
            )
            ident = sql.Identifier(principal)
            with conn.transaction():
                # tables it created (read-write grants) outlive it: they pass to the admin
                # role, then DROP OWNED only removes its privileges and DROP ROLE can run
                conn.execute(sql.SQL("REASSIGN OWNED BY {} TO CURRENT_USER").format(ident))
                conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))

    def usage(self, refs: dict[str, int | None]) -> dict[str, Usage]:
        oids = {ref: p for p, ref in refs.items() if ref is not None}
        if not oids:
            return {}
        with self.admin() as conn:
            if self.has_statements is None:
                row = conn.execute(
                    "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
                ).fetchone()
                self.has_statements = row is not None
            if self.has_statements:
                rows = conn.execute(
                    "SELECT userid::bigint, sum(calls)::bigint, sum(rows)::bigint "
                    "FROM pg_stat_statements WHERE userid = ANY(%s::oid[]) GROUP BY userid",
                    [list(oids)],
                ).fetchall()
                return {oids[r[0]]: Usage(queries=int(r[1]), rows=int(r[2])) for r in rows}
            # without pg_stat_statements: the role's activity, sessions open now
            rows = conn.execute(
                "SELECT usesysid::bigint, count(*) FROM pg_stat_activity "
                "WHERE usesysid = ANY(%s::oid[]) GROUP BY usesysid",
                [list(oids)],
            ).fetchall()
            return {oids[r[0]]: Usage(extra={"sessions": int(r[1])}) for r in rows}
