"""``postgresql_url``: a real PostgreSQL database for the service's tests.

One throw-away cluster per test session (``tests/pg.py``): a temporary directory, a unix
socket only, ``fsync=off``, stopped and removed at the end. Where PostgreSQL cannot run,
the tests that ask for it fail in CI (``CI`` set, or ``MLFACTORY_REQUIRE_POSTGRES=1``) and
are skipped, with the reason, elsewhere; they never pass without a server.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from ..pg import PostgresCluster, PostgresUnavailable


def postgres_required() -> bool:
    return bool(os.environ.get("CI")) or os.environ.get("MLFACTORY_REQUIRE_POSTGRES") == "1"


def unavailable(reason: str) -> None:
    """Fail (CI, or PostgreSQL required) or skip, saying why."""
    if postgres_required():
        pytest.fail(f"PostgreSQL is required here (CI / MLFACTORY_REQUIRE_POSTGRES): {reason}")
    pytest.skip(f"PostgreSQL is not available: {reason}")


@pytest.fixture(scope="session")
def postgresql_cluster() -> Iterator[PostgresCluster]:
    cluster = PostgresCluster()
    try:
        cluster.start()
    except PostgresUnavailable as e:
        cluster.stop()
        unavailable(str(e))
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def postgresql_url(postgresql_cluster: PostgresCluster) -> str:
    """SQLAlchemy URL of an empty database on the session's cluster."""
    return postgresql_cluster.create_database("mlfactory_test")
