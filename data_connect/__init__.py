"""``mlfactory.data``: connect to the platform's data stores from a notebook.

    import mlfactory.data
    engine = mlfactory.data.connect("warehouse")   # PostgreSQL: a SQLAlchemy engine
    s3 = mlfactory.data.connect("lake")            # S3: a boto3 client

A managed store's credentials are short-lived and issued to this server by the platform
service, which the server asks with its own hub token (``JUPYTERHUB_API_TOKEN``); nothing
long-lived sits in the image or the environment. New connections ask again before the
credentials run out. Importable without Jupyter; imports no other mlfactory part.
"""

from __future__ import annotations

from .client import (
    DataAccessDenied,
    DataServiceUnavailable,
    ServiceCredentials,
    connect,
    refresh_due,
    stores,
)

__all__ = [
    "DataAccessDenied",
    "DataServiceUnavailable",
    "ServiceCredentials",
    "connect",
    "refresh_due",
    "stores",
]
