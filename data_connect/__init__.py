"""``mlfactory.data``: connect to the platform's data stores from a notebook.

    import mlfactory.data
    engine = mlfactory.data.connect("warehouse")   # PostgreSQL: a SQLAlchemy engine
    s3 = mlfactory.data.connect("lake")            # S3: a boto3 client

A managed store's credentials are short-lived and issued to this server by the platform
service, which the kernel asks with the server's managed identity: a short-lived hub token
the server replaces while it runs, read from ``MLFACTORY_IDENTITY_FILE`` at each call;
nothing long-lived unlocks data. New connections ask again before the credentials run
out. Importable without Jupyter; imports no other mlfactory part.
"""

from __future__ import annotations

from .client import (
    DataAccessDenied,
    DataServiceUnavailable,
    ServiceCredentials,
    connect,
    read_identity,
    refresh_due,
    stores,
)

__all__ = [
    "DataAccessDenied",
    "DataServiceUnavailable",
    "ServiceCredentials",
    "connect",
    "read_identity",
    "refresh_due",
    "stores",
]
