"""Load a table from a data store the platform admin configured (filesystem, HTTP, SQL, S3).

The stores a user may use arrive as JSON in ``MLFACTORY_DATA_STORES`` (set by the spawner):
``[{"name", "kind", "url", "description"}]``. Paths stay inside a store's root; SQL runs
read-only with bound parameters. A managed store (``"managed": true``) is reached the way
``mlfactory.data.connect`` reaches it: short-lived credentials the platform service issues
to this server.
"""

from __future__ import annotations

import importlib
import io
import json
import os
import posixpath
import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

import pandas as pd
from mlfactory.components.placeholders import expects
from mlfactory.data.client import ServiceCredentials, postgres_engine, s3_client

ENV_VAR = "MLFACTORY_DATA_STORES"
KINDS = ("filesystem", "http", "postgresql", "mysql", "s3")
FORMATS = ("csv", "parquet", "json")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".txt": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".json": "json",
    ".jsonl": "json",
}
_CONTENT_TYPES = {
    "text/csv": "csv",
    "application/vnd.apache.parquet": "parquet",
    "application/x-parquet": "parquet",
    "application/json": "json",
    "application/x-ndjson": "json",
}
_SQL_DRIVERS = {"postgresql": "postgresql+psycopg", "mysql": "mysql+pymysql"}
_DRIVER_PACKAGES = {"postgresql": "psycopg", "mysql": "pymysql", "s3": "boto3"}


def _redact(url: str) -> str:
    """The URL without its password, for error messages."""
    return re.sub(r"(://[^:/@]*):[^@/]*@", r"\1:***@", url)


def _configured_stores(stores: Sequence[Mapping[str, Any]] | None) -> list[dict[str, Any]]:
    if stores is None:
        raw = os.environ.get(ENV_VAR)
        if not raw:
            raise LookupError(
                f"no data stores are configured for you ({ENV_VAR} is not set); ask the "
                "platform admin to add one to data_stores and give your group access"
            )
        try:
            stores = json.loads(raw)
        except json.JSONDecodeError as e:
            raise ValueError(f"{ENV_VAR} is not valid JSON: {e.msg} (position {e.pos})") from None
    if not isinstance(stores, Sequence) or isinstance(stores, str):
        raise ValueError(f"data stores must be a list of objects, got {type(stores).__name__}")
    out = []
    for i, s in enumerate(stores):
        if not isinstance(s, Mapping) or not {"name", "kind", "url"} <= set(s):
            raise ValueError(f"data store #{i} needs name, kind and url; got {s!r}")
        out.append(dict(s))
    return out


def _find_store(store: str, stores: list[dict[str, Any]]) -> dict[str, Any]:
    for s in stores:
        if s["name"] == store:
            if s["kind"] == "https":  # the scheme is in the url; both read the same way
                s = {**s, "kind": "http"}
            if s["kind"] not in KINDS:
                raise ValueError(
                    f"data store {store!r} has kind {s['kind']!r}; supported: {', '.join(KINDS)}"
                )
            return s
    known = ", ".join(sorted(s["name"] for s in stores)) or "none"
    raise KeyError(f"no data store named {store!r}; stores available to you: {known}")


def _relative_parts(path: str | None, store: str) -> list[str]:
    """The parts of a path that must stay inside the store: no absolute paths, no ``..``."""
    if not path or not str(path).strip():
        raise ValueError(f"path is required for data store {store!r}")
    text = str(path).replace("\\", "/")
    if text.startswith("/"):
        raise ValueError(f"path {path!r} must be relative to data store {store!r}")
    parts = [p for p in text.split("/") if p not in ("", ".")]
    if ".." in parts:
        raise ValueError(f"path {path!r} may not contain '..' (it must stay inside {store!r})")
    if not parts:
        raise ValueError(f"path {path!r} names no file in data store {store!r}")
    return parts


def _format_of(name: str, fmt: str | None, content_type: str | None = None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise ValueError(f"format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        return fmt
    suffix = PurePosixPath(name.removesuffix(".gz")).suffix.lower()
    if suffix in _SUFFIXES:
        return _SUFFIXES[suffix]
    if content_type:
        found = _CONTENT_TYPES.get(content_type.split(";")[0].strip().lower())
        if found:
            return found
    raise ValueError(f"cannot tell the format of {name!r}; pass format= ({', '.join(FORMATS)})")


def _parse(data: bytes | Path, fmt: str, name: str, columns: list[str] | None) -> pd.DataFrame:
    source = io.BytesIO(data) if isinstance(data, bytes) else data
    compression = "gzip" if name.endswith(".gz") else "infer"
    if fmt == "parquet":
        frame = pd.read_parquet(source, columns=columns)
    elif fmt == "json":
        lines = name.removesuffix(".gz").endswith(".jsonl")
        frame = pd.read_json(
            source, orient=None if lines else "records", lines=lines, compression=compression
        )
    else:
        sep = "\t" if name.removesuffix(".gz").endswith(".tsv") else ","
        frame = pd.read_csv(source, sep=sep, compression=compression)
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"{name}: no columns {missing}; columns: {', '.join(map(str, frame))}")
        frame = frame[list(columns)]
    return frame


def _read_limited(stream: Any, max_bytes: int | None, what: str) -> bytes:
    if max_bytes is None:
        return stream.read()
    data = stream.read(max_bytes + 1)
    if len(data) > max_bytes:
        raise ValueError(f"{what} is larger than max_bytes={max_bytes}")
    return data


def _require(kind: str, store: str) -> Any:
    package = _DRIVER_PACKAGES[kind]
    try:
        return importlib.import_module(package)
    except ImportError:
        raise ImportError(
            f"data store {store!r} is {kind}, which needs the {package!r} package: "
            f"pip install {package}"
        ) from None


# --- one reader per kind ------------------------------------------------------------------


def _filesystem_root(url: str) -> Path:
    parsed = urllib.parse.urlparse(url)
    if parsed.scheme == "file":
        return Path(urllib.parse.unquote(parsed.path))
    return Path(url)


def _read_filesystem(s: dict[str, Any], path: str | None, fmt: str | None, columns, max_bytes):
    root = _filesystem_root(s["url"]).resolve()
    parts = _relative_parts(path, s["name"])
    # resolve() follows symlinks, and is_relative_to compares whole path components, so a
    # link out of the root and a sibling such as /data-evil next to /data are both refused.
    target = root.joinpath(*parts).resolve()
    if not target.is_relative_to(root):
        raise PermissionError(f"path {path!r} leads outside data store {s['name']!r}")
    if not target.is_file():
        raise FileNotFoundError(f"no file {path!r} in data store {s['name']!r}")
    if max_bytes is not None and target.stat().st_size > max_bytes:
        raise ValueError(f"{path} is larger than max_bytes={max_bytes}")
    name = "/".join(parts)
    return _parse(target, _format_of(name, fmt), name, columns)


def _read_http(s, path, fmt, columns, timeout, max_bytes):
    base = s["url"] if s["url"].endswith("/") else s["url"] + "/"
    parts = _relative_parts(path, s["name"])
    url = base + "/".join(urllib.parse.quote(p) for p in parts)
    if urllib.parse.urlparse(url).scheme not in ("http", "https"):
        raise ValueError(f"data store {s['name']!r} has a non-HTTP url")
    # The scheme is checked just above: only http(s), never file:// or ftp://.
    request = urllib.request.Request(url, headers={"User-Agent": "mlfactory"})  # noqa: S310
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            data = _read_limited(response, max_bytes, path)
            content_type = response.headers.get("Content-Type")
    except urllib.error.HTTPError as e:
        raise ConnectionError(
            f"data store {s['name']!r}: GET {path} answered {e.code} {e.reason}"
        ) from None
    except (urllib.error.URLError, TimeoutError) as e:
        reason = getattr(e, "reason", e)
        raise ConnectionError(f"data store {s['name']!r} is unreachable: {reason}") from None
    name = "/".join(parts)
    return _parse(data, _format_of(name, fmt, content_type), name, columns)


def _sql_url(s: dict[str, Any]) -> str:
    url = s["url"]
    scheme, sep, rest = url.partition("://")
    if not sep:
        raise ValueError(f"data store {s['name']!r} url is not a database URL")
    if "+" not in scheme:  # postgresql://... -> the installed driver, psycopg 3 / PyMySQL
        scheme = _SQL_DRIVERS[s["kind"]]
    return f"{scheme}://{rest}"


def _read_sql(s, query, params, columns, timeout):
    if not query or not str(query).strip():
        raise ValueError(f"query is required for {s['kind']} data store {s['name']!r}")
    if params is not None and not isinstance(params, Mapping):
        raise TypeError("params must be a dict of bound parameters, e.g. {'since': date}")
    _require(s["kind"], s["name"])
    import sqlalchemy as sa

    if s.get("managed"):  # the server's short-lived role, as mlfactory.data.connect
        engine = postgres_engine(ServiceCredentials(s["name"]), pool_pre_ping=False)
    else:
        engine = sa.create_engine(_sql_url(s), pool_pre_ping=False)
    try:
        # The connection's transaction is rolled back when the block ends: nothing is kept.
        with engine.connect() as conn:
            # Read-only and a server-side time limit: a mistaken UPDATE fails and a runaway
            # query stops, whatever rights the store's account has.
            ms = int(timeout * 1000)
            if s["kind"] == "postgresql":
                conn.execute(sa.text("SET TRANSACTION READ ONLY"))
                conn.execute(sa.text(f"SET LOCAL statement_timeout = {ms}"))
            else:
                conn.execute(sa.text("SET SESSION TRANSACTION READ ONLY"))
                conn.execute(sa.text(f"SET SESSION MAX_EXECUTION_TIME = {ms}"))
            frame = pd.read_sql_query(sa.text(query), conn, params=dict(params or {}))
    except (sa.exc.SQLAlchemyError, pd.errors.DatabaseError) as e:
        cause = e.__cause__ if isinstance(e, pd.errors.DatabaseError) and e.__cause__ else e
        detail = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0]
        raise RuntimeError(
            f"data store {s['name']!r} ({_redact(s['url'])}): query failed: {detail}"
        ) from None
    finally:
        engine.dispose()
    if columns is not None:
        missing = [c for c in columns if c not in frame.columns]
        if missing:
            raise KeyError(f"query result has no columns {missing}; columns: {list(frame)}")
        frame = frame[list(columns)]
    return frame


def _read_s3(s, path, fmt, columns, timeout, max_bytes):
    boto3 = _require("s3", s["name"])
    from botocore.config import Config

    config = Config(connect_timeout=timeout, read_timeout=timeout)
    if s.get("managed"):
        # the store's url is its endpoint; the first part of path is the bucket, and the
        # credentials reach only the prefixes granted to this user's groups
        bucket, *parts = _relative_parts(path, s["name"])
        if not parts:
            raise ValueError(f"path {path!r}: name the bucket, then the object (bucket/key)")
        key = "/".join(parts)
        client = s3_client(ServiceCredentials(s["name"]), config=config)
    else:
        parsed = urllib.parse.urlparse(s["url"])
        if parsed.scheme != "s3" or not parsed.netloc:
            raise ValueError(f"data store {s['name']!r} url must look like s3://bucket/prefix")
        options = dict(urllib.parse.parse_qsl(parsed.query))
        prefix = parsed.path.strip("/")
        parts = _relative_parts(path, s["name"])
        key = posixpath.join(prefix, *parts) if prefix else "/".join(parts)
        bucket = parsed.netloc
        client = boto3.client(
            "s3",
            endpoint_url=options.get("endpoint_url"),
            region_name=options.get("region"),
            config=config,
        )
    try:
        response = client.get_object(Bucket=bucket, Key=key)
    except client.exceptions.NoSuchKey:
        raise FileNotFoundError(f"no object {path!r} in data store {s['name']!r}") from None
    data = _read_limited(response["Body"], max_bytes, path)
    name = "/".join(parts)
    return _parse(data, _format_of(name, fmt, response.get("ContentType")), name, columns)


@expects(
    store='the name of a data store your admin configured (e.g. "warehouse")',
)
def load_from_datastore(
    store: str,
    path: str | None = None,
    query: str | None = None,
    params: dict[str, Any] | None = None,
    format: str | None = None,
    columns: list[str] | None = None,
    timeout: float = 30.0,
    max_bytes: int | None = None,
    stores: list[dict[str, Any]] | None = None,
) -> pd.DataFrame:
    """Read a table from the data store named ``store``.

    The stores come from ``MLFACTORY_DATA_STORES`` (JSON list of ``{name, kind, url,
    description}``), or from ``stores`` when given. By kind:

    - ``filesystem``: ``path`` relative to the store's root (``url`` is a folder or
      ``file://`` URL). Absolute paths, ``..``, and symlinks that lead outside are refused.
    - ``http``: ``path`` relative to the store's base URL, fetched with ``timeout`` seconds.
    - ``s3``: ``path`` relative to ``s3://bucket/prefix`` (needs boto3; credentials come
      from the usual AWS environment; ``?endpoint_url=&region=`` in the url are honoured).
      A managed S3 store: ``path`` is ``bucket/key``, with credentials from the platform.
    - ``postgresql`` / ``mysql``: ``query`` with ``:name`` placeholders bound from
      ``params`` (never format values into the SQL), run in a read-only transaction with a
      server-side ``timeout``. PostgreSQL uses psycopg 3, MySQL needs PyMySQL. A managed
      PostgreSQL store connects as this server's short-lived role (``mlfactory.data``).

    Files are CSV, Parquet or JSON (records, or ``.jsonl`` lines), from the suffix, the
    HTTP Content-Type, or ``format``. ``columns`` keeps those columns; ``max_bytes`` refuses
    larger files. Raises KeyError for an unknown store (listing the ones you may use).
    """
    if timeout <= 0:
        raise ValueError(f"timeout must be positive, got {timeout}")
    s = _find_store(store, _configured_stores(stores))
    kind = s["kind"]
    if kind in ("postgresql", "mysql"):
        if path is not None:
            raise ValueError(f"{kind} data store {store!r} takes query=, not path=")
        return _read_sql(s, query, params, columns, timeout)
    if query is not None:
        raise ValueError(f"{kind} data store {store!r} takes path=, not query=")
    if kind == "filesystem":
        return _read_filesystem(s, path, format, columns, max_bytes)
    if kind == "http":
        return _read_http(s, path, format, columns, timeout, max_bytes)
    return _read_s3(s, path, format, columns, timeout, max_bytes)
