"""A real PostgreSQL "warehouse" for the data-credential tests and the benchmark (no pytest).

``stats_cluster()`` is a ``tests/pg.py`` cluster with ``pg_stat_statements`` loaded and
password (SCRAM) logins for everyone but the superuser, so ``VALID UNTIL`` and wrong
passwords are enforced as in production. ``prepare(cluster)`` makes the ``dw`` database:
schema ``a`` (table ``orders``, 5 rows) for group role ``dw_team_a``, schema ``b``
(``salaries``, 3 rows) for ``dw_team_b``, and the admin role the service issues with
(``CREATEROLE``, ``pg_signal_backend``, ``pg_read_all_stats``: the documented setup).
"""

from __future__ import annotations

from dataclasses import dataclass

import psycopg

from ..pg import SUPERUSER, PostgresCluster

ADMIN_PASSWORD = "admin-test-password"
SETUP = """
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE SCHEMA a;
CREATE SCHEMA b;
CREATE TABLE a.orders (id int PRIMARY KEY, amount int);
INSERT INTO a.orders SELECT g, g * 10 FROM generate_series(1, 5) g;
CREATE TABLE b.salaries (id int PRIMARY KEY, pay int);
INSERT INTO b.salaries SELECT g, g * 1000 FROM generate_series(1, 3) g;
CREATE ROLE mlf_admin LOGIN CREATEROLE PASSWORD '{pw}';
GRANT pg_signal_backend, pg_read_all_stats TO mlf_admin;
CREATE ROLE dw_team_a NOLOGIN;
GRANT USAGE ON SCHEMA a TO dw_team_a;
GRANT SELECT ON ALL TABLES IN SCHEMA a TO dw_team_a;
CREATE ROLE dw_team_b NOLOGIN;
GRANT USAGE ON SCHEMA b TO dw_team_b;
GRANT SELECT ON ALL TABLES IN SCHEMA b TO dw_team_b;
"""


def stats_cluster() -> PostgresCluster:
    """Started: pg_stat_statements loaded, SCRAM for every role but the superuser."""
    cluster = PostgresCluster(
        settings={
            "shared_preload_libraries": "'pg_stat_statements'",
            "max_connections": "200",
            "password_encryption": "'scram-sha-256'",
        }
    ).start()
    # servers run as their users' OS accounts: they reach the socket, the password decides
    cluster.socket_dir.chmod(0o755)
    hba = cluster.data_dir / "pg_hba.conf"
    hba.write_text(f"local all {SUPERUSER} trust\nlocal all all scram-sha-256\n")
    cluster.pg_ctl("reload")
    return cluster


@dataclass
class Warehouse:
    socket: str
    admin_secret: str
    url: str  # the store's url in mlfactory.yaml: no credentials

    def superuser(self) -> psycopg.Connection:
        return psycopg.connect(host=self.socket, user=SUPERUSER, dbname="dw", autocommit=True)

    def roles(self, prefix: str = "mlf\\_%") -> list[str]:
        with self.superuser() as conn:
            rows = conn.execute(
                "SELECT rolname FROM pg_roles WHERE rolname LIKE %s AND rolname <> 'mlf_admin'",
                [prefix],
            ).fetchall()
        return sorted(r[0] for r in rows)


def prepare(cluster: PostgresCluster, dbname: str = "dw") -> Warehouse:
    cluster.create_database(dbname)
    socket = str(cluster.socket_dir)
    with psycopg.connect(host=socket, user=SUPERUSER, dbname=dbname, autocommit=True) as c:
        c.execute(SETUP.format(pw=ADMIN_PASSWORD))
    return Warehouse(
        socket=socket,
        admin_secret=f"host={socket} dbname={dbname} user=mlf_admin password={ADMIN_PASSWORD}",
        url=f"postgresql:///{dbname}?host={socket}",
    )


def store_config(w: Warehouse, env: str = "DW_ADMIN", **over) -> dict:
    """The warehouse as an mlfactory.yaml ``data_stores`` entry: data-science reads schema a,
    ml-engineering reads schema b."""
    store = {
        "name": "warehouse",
        "kind": "postgresql",
        "url": w.url,
        "admin_credentials": {"env": env},
        "grants": [
            {"group": "data-science", "access": "read", "role": "dw_team_a"},
            {"group": "ml-engineering", "access": "read", "role": "dw_team_b"},
        ],
    }
    store.update(over)
    return store
