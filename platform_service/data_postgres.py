"""The ``postgresql`` data-store driver: one short-lived login role per server and issue
(HashiCorp Vault's database-engine pattern, done by the platform service).

What the admin sets up once (see docs): an admin role with ``CREATEROLE`` (PostgreSQL 16+:
and ``ADMIN OPTION`` on each grant's group role), its connection string in the file or
environment variable the config names, and per grant a ``NOLOGIN`` group role holding the
table and schema privileges (``GRANT SELECT ON ALL TABLES IN SCHEMA a TO mlf_dw_read``). Each
issued role is ``LOGIN``, ``VALID UNTIL`` at most an hour on, and a member of its grants'
group roles only. The admin must not be a SUPERUSER, and must be a member of each read-write
grant's group role: at the drop, what the issued role created passes to that group role
(never to the admin). All SQL is composed with ``psycopg.sql``; nothing here touches the event
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
ISSUED_ROLE_RE = r"^mlf_[a-z0-9_]+_[0-9a-f]{16}$"  # data_grants.role_name's output


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

    def _rw_roles(self) -> list[str]:
        return [
            g.role or default_role(self.store.name, g.access)
            for g in self.store.grants
            if g.access == "read-write"
        ]

    def check_admin(self) -> None:
        roles = [g.role or default_role(self.store.name, g.access) for g in self.store.grants]
        with self.admin() as conn:
            row = conn.execute(
                "SELECT rolsuper, rolcreaterole FROM pg_roles WHERE rolname = current_user"
            ).fetchone()
            if row and row[0]:
                # objects a user's role leaves behind must never run with the admin's rights
                raise AdminUnavailable(
                    "the admin role is a SUPERUSER; use a role with CREATEROLE only "
                    "(CREATE ROLE mlf_admin LOGIN CREATEROLE ...)"
                )
            if not row or not row[1]:
                raise AdminUnavailable("the admin role needs CREATEROLE to issue login roles")
            found = {
                r[0]: (r[1], r[2])
                for r in conn.execute(
                    "SELECT rolname, rolsuper OR rolcreaterole OR rolcanlogin, "
                    "pg_has_role(current_user, oid, 'USAGE') "
                    "FROM pg_roles WHERE rolname = ANY(%s)",
                    [roles],
                ).fetchall()
            }
            missing = [r for r in roles if r not in found]
            if missing:
                raise AdminUnavailable(
                    f"the group role(s) {', '.join(missing)} do not exist; create them "
                    "(CREATE ROLE ... NOLOGIN) and grant them the tables"
                )
            strong = [r for r in roles if found[r][0]]
            if strong:
                raise AdminUnavailable(
                    f"the group role(s) {', '.join(strong)} can log in or hold SUPERUSER or "
                    "CREATEROLE; a grant's role must be NOLOGIN with table privileges only"
                )
            # tables a read-write user creates pass to the grant's group role at the drop,
            # which REASSIGN OWNED allows only to a member of that role
            outside = [r for r in dict.fromkeys(self._rw_roles()) if not found[r][1]]
            if outside:
                raise AdminUnavailable(
                    f"the admin role must be a member of the read-write group role(s) "
                    f"{', '.join(outside)} (GRANT {outside[0]} TO <admin role>) so that tables "
                    "users create survive their server"
                )

    def issue(
        self, user: str, server_name: str, grant: Entitlement, now: float, ttl: int
    ) -> Credentials:
        name = role_name(user, server_name, secrets.token_hex(8))
        password = secrets.token_urlsafe(24)
        until = expiry(now, ttl)
        # ROLE CURRENT_USER: the admin becomes a member of the new role, which lets it end
        # the role's sessions and hand its objects to the grant's group role at the drop
        # (PostgreSQL 16 gives a creator ADMIN OPTION only). One statement: the role exists
        # whole or not at all.
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
        """Drop ``principal``; nothing if it is already gone (idempotent)."""
        rw = self._rw_roles()
        with self.admin() as conn:
            row = conn.execute("SELECT oid FROM pg_roles WHERE rolname = %s", [principal])
            found = row.fetchone()
            if found is None:
                return
            ident = sql.Identifier(principal)
            # what it owns goes to a read-write grant's NOLOGIN group role it is a member
            # of, never to the admin: a SECURITY DEFINER function it wrote would run with
            # the admin's CREATEROLE. Without such a grant its objects are dropped.
            heir = conn.execute(
                "SELECT g.rolname FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid "
                "WHERE m.member = %s AND g.rolname = ANY(%s) AND NOT g.rolsuper "
                "AND NOT g.rolcreaterole AND NOT g.rolcanlogin "
                "ORDER BY array_position(%s, g.rolname::text) LIMIT 1",
                [found[0], rw, rw],
            ).fetchone()
            try:
                # no new logins, then end its sessions: DROP ROLE fails while they last
                conn.execute(sql.SQL("ALTER ROLE {} NOLOGIN").format(ident))
                conn.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = %s",
                    [principal],
                )
                with conn.transaction():
                    if heir is not None:
                        conn.execute(
                            sql.SQL("REASSIGN OWNED BY {} TO {}").format(
                                ident, sql.Identifier(heir[0])
                            )
                        )
                    conn.execute(sql.SQL("DROP OWNED BY {}").format(ident))
                    conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(ident))
            except psycopg.errors.UndefinedObject:
                return  # dropped meanwhile (another tick, or an admin by hand)

    def orphans(self) -> list[str]:
        """Login roles this admin issued (platform naming, and it is a member of them):
        the broker drops those no credential row knows, e.g. left by a crash mid-issue."""
        with self.admin() as conn:
            rows = conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname ~ %s AND NOT rolsuper "
                "AND pg_has_role(current_user, oid, 'MEMBER')",
                [ISSUED_ROLE_RE],
            ).fetchall()
        return [r[0] for r in rows]

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
                try:
                    rows = conn.execute(
                        "SELECT userid::bigint, sum(calls)::bigint, sum(rows)::bigint "
                        "FROM pg_stat_statements WHERE userid = ANY(%s::oid[]) GROUP BY userid",
                        [list(oids)],
                    ).fetchall()
                    return {oids[r[0]]: Usage(queries=int(r[1]), rows=int(r[2])) for r in rows}
                except psycopg.errors.ObjectNotInPrerequisiteState:
                    # created but not in shared_preload_libraries: count sessions instead
                    self.has_statements = False
            # without pg_stat_statements: the role's activity, sessions open now
            rows = conn.execute(
                "SELECT usesysid::bigint, count(*) FROM pg_stat_activity "
                "WHERE usesysid = ANY(%s::oid[]) GROUP BY usesysid",
                [list(oids)],
            ).fetchall()
            return {oids[r[0]]: Usage(extra={"sessions": int(r[1])}) for r in rows}
