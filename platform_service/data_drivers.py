"""The data-store plugin interface: how the platform service issues, renews and revokes a
server's credentials on one kind of store, checks its admin credentials and reads usage.

Built in: ``postgresql`` (``data_postgres``) and ``s3`` (``data_s3``). Others come from the
``mlfactory.data_stores`` entry point group (``data_broker.driver_class``):
``kind = package.module:DriverClass``, a class taking ``(store: DataStore, admin_secret:
str)``. Drivers are synchronous (database and HTTP client libraries are); the broker calls
them in worker threads.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from mlfactory.hub.platform_config import DataStore

from .data_grants import Entitlement

ENTRY_POINT_GROUP = "mlfactory.data_stores"


class AdminUnavailable(RuntimeError):
    """The store's admin connection does not work now; the message says what failed."""


@dataclass(frozen=True)
class Credentials:
    """What one issue hands a server: ``principal`` (the role or session name, recorded in
    the audit), ``secret`` (what the client connects with: shown to that server only),
    ``expires_at`` (epoch seconds) and ``ref`` (a driver's handle for usage, e.g. an oid)."""

    principal: str
    expires_at: float
    secret: dict[str, Any]
    ref: int | None = None


@dataclass(frozen=True)
class Usage:
    """Activity of one principal as the store counts it (None: the store does not say)."""

    queries: int | None = None
    rows: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


@runtime_checkable
class DataStoreDriver(Protocol):
    """One store's credential issuer. ``now`` is injected; nothing here reads a clock."""

    def check_admin(self) -> None:
        """Raise ``AdminUnavailable`` saying what is wrong when the admin credentials or the
        store's setup (e.g. a grant's group role) do not work."""

    def issue(
        self, user: str, server_name: str, grant: Entitlement, now: float, ttl: int
    ) -> Credentials:
        """New credentials for this user's server, valid until at most ``now + ttl``."""

    def renew(self, principal: str, expires_at: float) -> bool:
        """Extend a live principal to ``expires_at``; False when the store cannot (the
        client then asks for new credentials before they expire)."""

    def revoke(self, principal: str) -> None:
        """End the principal now (its sessions too); no error when it is already gone."""

    def usage(self, refs: dict[str, int | None]) -> dict[str, Usage]:
        """Usage per principal (``refs``: principal → its ``Credentials.ref``)."""


def read_admin_secret(store: DataStore, environ: dict[str, str] | None = None) -> str:
    """The store's admin secret from the environment variable or file its config names;
    ``AdminUnavailable`` naming which and why when it cannot be read."""
    assert store.admin_credentials is not None
    where = store.admin_credentials
    if where.env:
        value = (os.environ if environ is None else environ).get(where.env, "")
        if not value:
            raise AdminUnavailable(f"the environment variable {where.env} is not set or empty")
        return value.strip()
    try:
        value = Path(where.file).read_text().strip()
    except OSError as e:
        raise AdminUnavailable(f"cannot read {where.file}: {e.strerror}") from None
    if not value:
        raise AdminUnavailable(f"{where.file} is empty")
    return value
