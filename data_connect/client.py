"""Credentials from the platform service, and clients built on them (``mlfactory.data``)."""

from __future__ import annotations

import json
import os
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

STORES_ENV = "MLFACTORY_DATA_STORES"
SERVICE_URL_ENV = "MLFACTORY_SERVICE_URL"
TOKEN_ENV = "JUPYTERHUB_API_TOKEN"  # noqa: S105 (the variable's name, not a secret)
# the server's managed identity, a file its extension replaces while the server runs
IDENTITY_FILE_ENV = "MLFACTORY_IDENTITY_FILE"
TIMEOUT_S = 20
# a notebook run as its server starts may come before the server's first identity
IDENTITY_WAIT_S = 30.0
DEFAULT_PREFIX = "/services/mlfactory"  # the hub-managed service's URL prefix


class DataAccessDenied(PermissionError):
    """The platform refused (no grant on the store, or not a running server's identity)."""


class DataServiceUnavailable(ConnectionError):
    """No new credentials now: the platform service or the store's admin connection is
    down. Connections already open keep working until their credentials expire."""


def refresh_due(expires_at: float, now: float, ttl: float) -> bool:
    """Whether to ask for fresh credentials before the next connection: in the last quarter
    of their life, and never closer than 60 s to the expiry (pure)."""
    return expires_at - now <= max(60.0, ttl / 4)


class IdentityNotYet(DataServiceUnavailable):
    """The server has not received its first identity (it is starting, or the service is
    away)."""


def read_identity(path: str, now: float) -> str:
    """The token in the server's identity file, read afresh (the server replaces it while it
    runs, so a kernel never needs a restart); a clear error when there is none or it has
    expired."""
    try:
        with open(path, encoding="utf-8") as f:
            held = json.load(f)
        token, expires_at = str(held["token"]), float(held["expires_at"])
    except FileNotFoundError:
        raise IdentityNotYet(
            "This server has no data identity yet: it asks the platform service for one as "
            "it starts and retries while the service is away. Try again in a minute; if this "
            "lasts, restart your server and tell your admin."
        ) from None
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DataServiceUnavailable(
            f"This server's data identity ({path}) cannot be read ({e}); restart your server."
        ) from None
    if now >= expires_at:
        when = time.strftime("%H:%M:%S UTC", time.gmtime(expires_at))
        raise DataAccessDenied(
            f"This server's data identity expired at {when}: the server could not renew it "
            "(the platform service or the hub is down, see the server's log). New data "
            "credentials come once it is back; if not within a few minutes, restart your "
            "server. Connections already open keep working until their credentials expire."
        )
    return token


def stores(environ: dict[str, str] | None = None) -> list[dict[str, Any]]:
    """The stores this server's user may use, as the spawner listed them."""
    env = os.environ if environ is None else environ
    text = env.get(STORES_ENV)
    if text is None:
        raise LookupError(f"{STORES_ENV} is not set: this is not a server started by the platform")
    try:
        data = json.loads(text)
    except ValueError:
        raise LookupError(f"{STORES_ENV} is not valid JSON") from None
    return data if isinstance(data, list) else []


class ServiceCredentials:
    """One store's credentials for this server, asked of the platform service and asked
    again when ``refresh_due``. Thread-safe; ``clock`` is injected for tests."""

    def __init__(
        self,
        store: str,
        *,
        service_url: str | None = None,
        token: str | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.store = store
        self.sleep = sleep
        url = service_url or os.environ.get(SERVICE_URL_ENV, "")
        # the server's managed identity, else (an older server) the server's own token
        self.identity_file = None if token else os.environ.get(IDENTITY_FILE_ENV) or None
        self.token = token or ("" if self.identity_file else os.environ.get(TOKEN_ENV, ""))
        if not url or not (self.token or self.identity_file):
            raise DataServiceUnavailable(
                f"{SERVICE_URL_ENV} and {IDENTITY_FILE_ENV} (on an older server, "
                f"{TOKEN_ENV}) must be set: they are in a platform server's notebooks; ask "
                "your admin."
            )
        if not url.startswith(("http://", "https://")):
            raise DataServiceUnavailable(f"{SERVICE_URL_ENV} must be an http(s) URL")
        # the bare address (http://host:port) or one ending in the service's prefix
        parts = urlsplit(url)
        base = parts.path if parts.path not in ("", "/") else DEFAULT_PREFIX
        path = f"{base.rstrip('/')}/api/data/{quote(store, safe='')}/credentials"
        self.url = urlunsplit((parts.scheme, parts.netloc, path, "", ""))
        self.clock = clock
        self._answer: dict[str, Any] | None = None
        self._expires_here = 0.0
        self._lock = threading.Lock()

    def answer(self) -> dict[str, Any]:
        """The service's latest answer (``credentials``, ``expires_at``, ``principal``...)."""
        with self._lock:
            a = self._answer
            # the expiry on this machine's clock: the answer's lifetime from when it came,
            # so a skew between the service's clock and ours does not matter
            if a is None or refresh_due(self._expires_here, self.clock(), a["ttl"]):
                received = self.clock()
                self._answer = a = self._fetch()
                self._expires_here = received + (a["expires_at"] - a["issued_at"])
            return a

    def get(self) -> dict[str, Any]:
        return self.answer()["credentials"]

    def bearer(self) -> str:
        """The token to show the service now: the identity file's current one, read at each
        call, or the one given."""
        if not self.identity_file:
            return self.token
        deadline = self.clock() + IDENTITY_WAIT_S
        while True:
            try:
                return read_identity(self.identity_file, self.clock())
            except IdentityNotYet:
                if self.clock() >= deadline:
                    raise
                self.sleep(0.5)

    def _fetch(self) -> dict[str, Any]:
        req = urllib.request.Request(  # noqa: S310 (http(s) only, checked above)
            self.url,
            data=b"{}",
            method="POST",
            headers={
                "Authorization": f"token {self.bearer()}",
                "Content-Type": "application/json",
            },
        )
        try:
            with urllib.request.urlopen(req, timeout=TIMEOUT_S) as resp:  # noqa: S310
                return json.loads(resp.read())
        except urllib.error.HTTPError as e:
            try:
                message = json.loads(e.read()).get("error") or e.reason
            except ValueError:
                message = e.reason
            if e.code in (401, 403, 404):
                raise DataAccessDenied(message) from None
            raise DataServiceUnavailable(message) from None
        except (urllib.error.URLError, OSError) as e:
            raise DataServiceUnavailable(
                f"The platform service cannot be reached ({e}); new data credentials are "
                "refused until it is back. Connections already open keep working until "
                "their credentials expire."
            ) from None


def _find(name: str, environ: dict[str, str] | None) -> dict[str, Any]:
    listed = stores(environ)
    for s in listed:
        if s.get("name") == name:
            return s
    names = ", ".join(s.get("name", "?") for s in listed) or "none"
    raise LookupError(
        f"No data store {name!r} for you here (yours: {names}); ask a data admin for a grant"
    )


def postgres_engine(creds: ServiceCredentials, **engine_kwargs: Any):
    """A SQLAlchemy engine whose every new connection uses the current credentials."""
    import sqlalchemy as sa
    from sqlalchemy import event

    first = creds.get()
    url = sa.engine.make_url(first["url"]).set(username=None, password=None)
    engine_kwargs.setdefault("pool_pre_ping", True)
    engine = sa.create_engine(url, **engine_kwargs)

    @event.listens_for(engine, "do_connect")
    def _credentials(dialect, conn_rec, cargs, cparams) -> None:
        c = creds.get()
        cparams["user"] = c["user"]
        cparams["password"] = c["password"]

    return engine


def s3_client(creds: ServiceCredentials, **client_kwargs: Any):
    """A boto3 S3 client whose credentials refresh from the service before they expire."""
    import boto3
    import botocore.session
    from botocore.credentials import RefreshableCredentials

    def metadata() -> dict[str, str]:
        a = creds.answer()
        c = a["credentials"]
        return {
            "access_key": c["access_key_id"],
            "secret_key": c["secret_access_key"],
            "token": c["session_token"],
            "expiry_time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(a["expires_at"])),
        }

    first = creds.get()
    bs = botocore.session.get_session()
    bs._credentials = RefreshableCredentials.create_from_metadata(
        metadata(), metadata, "mlfactory-platform"
    )
    session = boto3.Session(botocore_session=bs, region_name=first.get("region"))
    client_kwargs.setdefault("endpoint_url", first.get("endpoint_url"))
    return session.client("s3", **client_kwargs)


def connect(
    name: str,
    *,
    environ: dict[str, str] | None = None,
    service_url: str | None = None,
    token: str | None = None,
    **kwargs: Any,
):
    """A ready client for data store ``name``: a SQLAlchemy engine (PostgreSQL) or a boto3
    S3 client. Managed stores get short-lived credentials issued to this server; extra
    keyword arguments go to ``create_engine`` / ``client``."""
    store = _find(name, environ)
    kind = store.get("kind")
    if not store.get("managed"):
        if kind == "postgresql":
            import sqlalchemy as sa

            url = sa.engine.make_url(store["url"]).set(drivername="postgresql+psycopg")
            return sa.create_engine(url, **kwargs)
        raise LookupError(
            f"Data store {name!r} ({kind}) has no managed credentials: read it with "
            "load_from_datastore, or ask an admin to manage it"
        )
    creds = ServiceCredentials(name, service_url=service_url, token=token)
    if kind == "postgresql":
        return postgres_engine(creds, **kwargs)
    if kind == "s3":
        return s3_client(creds, **kwargs)
    raise LookupError(f"Data store {name!r}: connect() does not know the kind {kind!r}")
