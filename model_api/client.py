"""The SDK: call served models from Python, sync (``Client``) or async (``AsyncClient``).

    with Client("http://models:8080", token=...) as c:
        iris = c.model("iris")                      # production alias, else newest version
        result = iris.predict([{"sepal_length": 5.1, ...}])
        result.labels, result.probabilities, result.to_records(), result.to_pandas()

Sends records, 2-D arrays (columns in schema order, discovered from the model's metadata),
dicts of columns or DataFrames. Retries on 503 honoring ``Retry-After`` (a prediction has no
side effects, so repeating it is safe) and once on a dropped keep-alive connection; never on
4xx, 500 or 504. Errors are the server's typed errors (``InvalidInput.field`` names the bad
field) with its message.
"""

from __future__ import annotations

import asyncio
import http.client
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any
from urllib.parse import quote, urlsplit

import numpy as np
import orjson

from .errors import ERROR_TYPES, ModelAPIError, NotReady
from .results import Prediction

_DUMPS = orjson.OPT_SERIALIZE_NUMPY
_RETRYABLE_CONN = (ConnectionError, http.client.RemoteDisconnected, http.client.BadStatusLine)


def error_from_response(status: int, body: bytes, headers: Any) -> ModelAPIError:
    """Rebuild the server's typed error from its JSON body."""
    try:
        data = orjson.loads(body)
        message, kind = str(data["error"]), str(data.get("error_type", ""))
        details = data.get("details") or {}
    except (orjson.JSONDecodeError, KeyError, TypeError):
        message, kind, details = body[:500].decode("utf-8", "replace"), "", {}
    cls = ERROR_TYPES.get(kind, ModelAPIError)
    err = cls.__new__(cls)
    ModelAPIError.__init__(err, message, details)
    err.status = status
    if "field" in details:
        err.field = details["field"]  # type: ignore[attr-defined]
    if isinstance(err, NotReady):
        err.retry_after = _retry_after(headers)
    return err


def _retry_after(headers: Any) -> float:
    value = headers.get("Retry-After") if headers is not None else None
    try:
        return max(0.0, float(value))
    except (TypeError, ValueError):
        return 1.0


def _model_path(name: str, version: str | None) -> str:
    p = f"/v2/models/{quote(name, safe='')}"
    return p + f"/versions/{quote(str(version), safe='')}" if version is not None else p


def to_records(data: Any, input_names: Sequence[str]) -> list[dict[str, Any]]:
    """Records from records, a DataFrame, a dict of columns, a 2-D array or a list of texts."""
    if hasattr(data, "to_dict") and hasattr(data, "columns"):
        return data.to_dict(orient="records")
    if isinstance(data, dict):
        cols = {k: np.asarray(v).tolist() for k, v in data.items()}
        n = len(next(iter(cols.values()))) if cols else 0
        return [{k: v[i] for k, v in cols.items()} for i in range(n)]
    if isinstance(data, list) and (not data or isinstance(data[0], dict)):
        return data
    if isinstance(data, list) and isinstance(data[0], str) and len(input_names) == 1:
        return [{input_names[0]: s} for s in data]
    arr = np.asarray(data)
    if arr.ndim == 1:
        arr = arr.reshape(1, -1)
    if arr.ndim != 2 or arr.shape[1] != len(input_names):
        raise ValueError(
            f"expected rows of {len(input_names)} values ({', '.join(input_names)}), "
            f"got shape {list(arr.shape)}"
        )
    return [dict(zip(input_names, row, strict=True)) for row in arr.tolist()]


def _needs_names(data: Any) -> bool:
    """Arrays and texts need the model's input names; records, dicts and DataFrames carry
    theirs (no metadata round trip for them)."""
    if isinstance(data, list) and data and isinstance(data[0], dict):
        return False
    return not (hasattr(data, "columns") or isinstance(data, dict))


def _predict_body(records: list[dict[str, Any]], outputs: Any, parameters: Any) -> bytes:
    body: dict[str, Any] = {"records": records}
    if outputs is not None:
        body["outputs"] = list(outputs)
    if parameters:
        body["parameters"] = parameters
    return orjson.dumps(body, option=_DUMPS)


class _Base:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        timeout: float = 30.0,
        retries: int = 3,
        max_retry_wait: float = 30.0,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https"):
            raise ValueError(f"url must be http(s)://host[:port][/prefix], got {url!r}")
        self.url = url.rstrip("/")
        self._parts = parts
        self._prefix = parts.path.rstrip("/")
        self.timeout = timeout
        self.retries = retries
        self.max_retry_wait = max_retry_wait
        self._headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    def _wait(self, err: NotReady, attempt: int) -> float | None:
        """Seconds to wait before retrying, or None to give up."""
        if attempt >= self.retries or err.retry_after > self.max_retry_wait:
            return None
        return err.retry_after


class Client(_Base):
    """Synchronous client on one keep-alive connection (not thread-safe: one per thread)."""

    def __init__(self, url: str, *, sleep: Callable[[float], None] = time.sleep, **kw: Any):
        super().__init__(url, **kw)
        self._sleep = sleep
        self._conn: http.client.HTTPConnection | None = None

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            cls = (
                http.client.HTTPSConnection
                if self._parts.scheme == "https"
                else http.client.HTTPConnection
            )
            self._conn = cls(self._parts.hostname, self._parts.port, timeout=self.timeout)
        return self._conn

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        attempt, reconnected = 0, False
        while True:
            conn = self._connection()
            try:
                conn.request(method, self._prefix + path, body=body, headers=self._headers)
                resp = conn.getresponse()
                data = resp.read()
            except _RETRYABLE_CONN:
                # a keep-alive connection the server closed: reconnect once
                self.close()
                if reconnected:
                    raise
                reconnected = True
                continue
            if resp.status == 200:
                return orjson.loads(data)
            err = error_from_response(resp.status, data, resp.headers)
            if isinstance(err, NotReady):
                wait = self._wait(err, attempt)
                if wait is not None:
                    attempt += 1
                    self._sleep(wait)
                    continue
            raise err

    def models(self) -> list[dict[str, Any]]:
        return self.request("GET", "/v2/models")["models"]

    def model(self, name: str, version: str | int | None = None) -> RemoteModel:
        return RemoteModel(self, name, None if version is None else str(version))


class RemoteModel:
    def __init__(self, client: Client, name: str, version: str | None) -> None:
        self.client, self.name, self.version = client, name, version
        self._path = _model_path(name, version)
        self._metadata: dict[str, Any] | None = None

    @property
    def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            self._metadata = self.client.request("GET", self._path)
        return self._metadata

    @property
    def input_names(self) -> list[str]:
        return [i["name"] for i in self.metadata["inputs"]]

    def schema(self) -> dict[str, Any]:
        """JSON Schema of the request and response bodies."""
        return self.client.request("GET", self._path + "/schema")

    def openapi(self) -> dict[str, Any]:
        return self.client.request("GET", self._path + "/openapi.json")

    def ready(self) -> bool:
        try:
            return bool(self.client.request("GET", self._path + "/ready")["ready"])
        except NotReady:
            return False

    def predict(
        self,
        data: Any,
        *,
        outputs: Sequence[str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Prediction:
        names = self.input_names if _needs_names(data) else []
        body = _predict_body(to_records(data, names), outputs, parameters)
        return Prediction.from_response(self.client.request("POST", self._path + "/predict", body))


class AsyncClient(_Base):
    """Asynchronous client on tornado's ``AsyncHTTPClient``."""

    def __init__(
        self, url: str, *, sleep: Callable[[float], Awaitable[None]] = asyncio.sleep, **kw: Any
    ):
        super().__init__(url, **kw)
        self._sleep = sleep
        from tornado.httpclient import AsyncHTTPClient

        self._http = AsyncHTTPClient()

    async def request(self, method: str, path: str, body: bytes | None = None) -> Any:
        from tornado.httpclient import HTTPClientError

        attempt = 0
        while True:
            try:
                resp = await self._http.fetch(
                    self.url + path,
                    method=method,
                    body=body,
                    headers=self._headers,
                    request_timeout=self.timeout,
                )
                return orjson.loads(resp.body)
            except HTTPClientError as e:
                if e.response is None:
                    raise
                err = error_from_response(e.code, e.response.body, e.response.headers)
            if isinstance(err, NotReady):
                wait = self._wait(err, attempt)
                if wait is not None:
                    attempt += 1
                    await self._sleep(wait)
                    continue
            raise err

    async def models(self) -> list[dict[str, Any]]:
        return (await self.request("GET", "/v2/models"))["models"]

    def model(self, name: str, version: str | int | None = None) -> AsyncRemoteModel:
        return AsyncRemoteModel(self, name, None if version is None else str(version))

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        return None


class AsyncRemoteModel:
    def __init__(self, client: AsyncClient, name: str, version: str | None) -> None:
        self.client, self.name, self.version = client, name, version
        self._path = _model_path(name, version)
        self._metadata: dict[str, Any] | None = None

    async def metadata(self) -> dict[str, Any]:
        if self._metadata is None:
            self._metadata = await self.client.request("GET", self._path)
        return self._metadata

    async def input_names(self) -> list[str]:
        return [i["name"] for i in (await self.metadata())["inputs"]]

    async def schema(self) -> dict[str, Any]:
        return await self.client.request("GET", self._path + "/schema")

    async def predict(
        self,
        data: Any,
        *,
        outputs: Sequence[str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Prediction:
        names = await self.input_names() if _needs_names(data) else []
        body = _predict_body(to_records(data, names), outputs, parameters)
        return Prediction.from_response(
            await self.client.request("POST", self._path + "/predict", body)
        )
