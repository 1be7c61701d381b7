"""The tornado model server: Open Inference Protocol routes plus ``/predict``.

Thin handlers over ``wrapper``/``schemas``/``protocol``. Model work (validation, the model
call, shaping, JSON encoding) is one job per request, run by ``Runner``: in a small thread
pool with a per-request timeout, or inline on the event loop for small requests to models
that have proven fast (see ``Runner``). Python cannot interrupt a thread, so a job that
outlives its request keeps its thread until it returns: the request is answered 504 at once,
the job counts as pending, and once pending jobs reach ``max_pending`` new requests get 503
with ``Retry-After`` instead of queueing behind a stuck model.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import time
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson
from tornado import web

from .auth import Authorizer, Identity
from .errors import (
    BadRequest,
    InvalidInput,
    ModelAPIError,
    ModelUnavailable,
    NotFound,
    NotReady,
    Overloaded,
    PredictionTimeout,
    UnsupportedMediaType,
)
from .package import ModelRepository, mlfactory_version
from .protocol import decode_infer_request, encode_infer_response, output_specs
from .results import envelope
from .schemas import openapi_document, records_to_input, request_json_schema, response_json_schema
from .schemas import tensors_to_input as _tensors_to_input
from .tasks import API_VERSION, OUTPUT_SCHEMA_VERSION
from .wrapper import Model

log = logging.getLogger("mlfactory.model_api")
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY


@dataclass
class _Entry:
    versions: dict[str, Model] = field(default_factory=dict)
    aliases: dict[str, str] = field(default_factory=dict)
    # version numbers and aliases that failed to load -> why; a request for one is refused,
    # never answered by another version
    unavailable: dict[str, str] = field(default_factory=dict)
    reason: str | None = None  # why none of the model is served (unreadable aliases, ...)

    def default_ref(self) -> str | None:
        """The ``production`` alias when the model has one, else its newest version."""
        if "production" in self.aliases or "production" in self.unavailable:
            return "production"
        published = [*self.versions, *(r for r in self.unavailable if r.isdigit())]
        return max(published, key=_version_key) if published else None


def _unavailable(name: str, ref: str | None, reason: str) -> ModelUnavailable:
    what = f"model {name!r}" if ref is None else f"{ref!r} of model {name!r}"
    return ModelUnavailable(
        f"{what} is not served: it failed to load when the server started ({reason}); fix "
        "the package and restart the model server",
        {"model": name, "version": ref, "ready": False, "reason": reason},
    )


class ModelStore:
    """The models this server serves: name -> numbered versions and aliases, plus the
    models, versions and aliases that failed to load and why."""

    def __init__(self) -> None:
        self._models: dict[str, _Entry] = {}
        self.ready = False
        self.loading_error: str | None = None

    def add(self, model: Model, aliases: Iterable[str] = ()) -> None:
        version = model.version or "1"
        model.version = version
        entry = self._models.setdefault(model.name, _Entry())
        entry.versions[version] = model
        for alias in aliases:
            entry.aliases[alias] = version

    def add_unavailable(self, name: str, ref: str | None, reason: str) -> None:
        """Record that ``ref`` (a version or an alias; None: the whole model) is not served."""
        entry = self._models.setdefault(name, _Entry())
        if ref is None:
            entry.reason = reason
        else:
            entry.unavailable[ref] = reason

    def names(self) -> list[str]:
        return sorted(self._models)

    def problem(self, name: str) -> str | None:
        """Why the model's default version is not served, or None when it is."""
        e = self.entry(name)
        if e.reason is not None:
            return e.reason
        ref = e.default_ref()
        return "no version loaded" if ref is None else e.unavailable.get(ref)

    def entry(self, name: str) -> _Entry:
        e = self._models.get(name)
        if e is None:
            if not self.ready:
                raise NotReady("models are still loading", retry_after=1)
            raise NotFound(
                f"no model named {name!r}; served: {', '.join(self.names()) or 'none'}",
                {"model": name},
            )
        return e

    def get(self, name: str, ref: str | None) -> tuple[Model, str | None]:
        """(model, alias used) for a version number, an alias, or None (production / newest)."""
        e = self.entry(name)
        if e.reason is not None:
            raise _unavailable(name, None, e.reason)
        ref = ref if ref is not None else e.default_ref()
        if ref is None:
            raise _unavailable(name, None, "no version loaded")
        if ref in e.unavailable:
            raise _unavailable(name, ref, e.unavailable[ref])
        m = e.versions.get(ref)
        if m is not None:
            return m, None
        version = e.aliases.get(ref)
        if version is not None:
            return e.versions[version], ref
        raise NotFound(
            f"model {name!r} has no version or alias {ref!r}; versions: "
            f"{', '.join(sorted(e.versions, key=_version_key))}; "
            f"aliases: {', '.join(sorted(e.aliases)) or 'none'}",
            {"model": name, "version": ref},
        )


def _version_key(v: str) -> tuple[int, str]:
    return (int(v), v) if v.isdigit() else (-1, v)


@dataclass
class Loaded:
    """What a loader gives the server: models with their aliases, and what failed to load."""

    models: list[tuple[Model, list[str]]] = field(default_factory=list)
    # (model name, version or alias; None: the whole model) -> why it is not served
    unavailable: dict[tuple[str, str | None], str] = field(default_factory=dict)


def _reason(e: Exception, root: os.PathLike[str]) -> str:
    msg = e.message if isinstance(e, ModelAPIError) else f"{type(e).__name__}: {e}"
    # paths relative to the repository: the operator knows where it is, callers need not
    return msg.replace(f"{os.fspath(root)}{os.sep}", "")


def load_repository(repo: ModelRepository, names: Iterable[str] | None = None) -> Loaded:
    """Every version of the named models (all models by default) with their aliases.

    A package that cannot be loaded (missing or swapped artefact, newer package format,
    unreadable aliases, an alias naming a version that does not exist or did not load) is
    skipped and reported in ``Loaded.unavailable``; the rest is served.
    """
    out = Loaded()
    for name in names or repo.models():
        try:
            aliases = repo.aliases(name)
            versions = repo.versions(name)
            if not versions:
                raise NotFound(f"no model named {name!r} in the repository")
        except Exception as e:
            out.unavailable[(name, None)] = _reason(e, repo.root)
            continue
        loaded: dict[int, Model] = {}
        for v in versions:
            try:
                loaded[v] = repo.load(name, v)
            except Exception as e:
                out.unavailable[(name, str(v))] = _reason(e, repo.root)
        for alias, v in aliases.items():
            if v not in versions:
                out.unavailable[(name, alias)] = (
                    f"the alias {alias!r} names version {v}, which does not exist; "
                    f"versions: {', '.join(map(str, versions))}"
                )
            elif v not in loaded:
                out.unavailable[(name, alias)] = (
                    f"the alias {alias!r} names version {v}, which failed to load: "
                    f"{out.unavailable[(name, str(v))]}"
                )
        for v, model in loaded.items():
            out.models.append((model, [a for a, av in aliases.items() if av == v]))
    return out


@dataclass
class _Speed:
    """Recent job times of one model (whole job: validation, call, shaping, encoding)."""

    streak: int = 0  # consecutive pooled jobs within the inline budget
    demotions: int = 0  # inline jobs that went over it


class Runner:
    """Runs model work with a per-request timeout: in a thread pool, or inline when safe.

    ``execution="thread"``: every job runs in the pool; the request is answered 504 at its
    deadline and the event loop never waits on model code. ``execution="auto"`` (default):
    a small request (``inline_max_rows``) to a model whose last ``warmup_jobs`` pooled jobs
    were all fast runs inline on the event loop, which saves the thread hand-off (about a
    quarter of a 1-row prediction's CPU on a 2-core machine). A job is slow when it used more
    than ``inline_budget`` seconds of CPU, or took ten times that on the wall clock (a model
    that waits on a lock or the network). CPU time, not wall time, so that a busy machine
    preempting a fast model does not count against it. An inline slow job sends its model
    back to the pool, and each such demotion doubles the streak of fast pooled jobs needed to
    come back. The limit, stated plainly: a model that was fast and then hangs inside one
    inline call stalls the server until that call returns; serve models you do not trust to
    stay fast with ``execution="thread"``.
    """

    def __init__(
        self,
        workers: int = 4,
        timeout: float = 30.0,
        max_pending: int | None = None,
        *,
        execution: str = "auto",
        inline_budget: float = 0.002,
        inline_max_rows: int = 64,
        warmup_jobs: int = 8,
        clock: Callable[[], float] = time.perf_counter,
        cpu_clock: Callable[[], float] = time.thread_time,
    ) -> None:
        if execution not in ("auto", "thread"):
            raise ValueError(f"execution must be 'auto' or 'thread', got {execution!r}")
        self.pool = ThreadPoolExecutor(workers, thread_name_prefix="mlfactory-model")
        self.timeout = timeout
        self.max_pending = max_pending or workers * 16
        self.pending = 0
        self.execution = execution
        self.inline_budget = inline_budget
        self.inline_max_rows = inline_max_rows
        self.warmup_jobs = warmup_jobs
        self.clock = clock
        self.cpu_clock = cpu_clock
        self._speed: dict[Any, _Speed] = {}

    def _slow(self, wall: float, cpu: float) -> bool:
        return cpu > self.inline_budget or wall > 10 * self.inline_budget

    def _timed(self, speed: _Speed, fn: Callable[..., Any], *args: Any) -> Any:
        t0, c0 = self.clock(), self.cpu_clock()
        try:
            return fn(*args)
        finally:
            slow = self._slow(self.clock() - t0, self.cpu_clock() - c0)
            speed.streak = 0 if slow else speed.streak + 1

    def runs_inline(self, key: Any, rows: int) -> bool:
        sp = self._speed.get(key)
        return (
            self.execution == "auto"
            and sp is not None
            and rows <= self.inline_max_rows
            and sp.streak >= self.warmup_jobs << min(sp.demotions, 10)
        )

    async def call(self, fn: Callable[..., Any], *args: Any, key: Any = None, rows: int = 1) -> Any:
        speed = self._speed.setdefault(key, _Speed())
        if self.runs_inline(key, rows):
            t0, c0 = self.clock(), self.cpu_clock()
            try:
                return fn(*args)
            finally:
                wall, cpu = self.clock() - t0, self.cpu_clock() - c0
                if self._slow(wall, cpu):
                    speed.demotions += 1
                    speed.streak = 0
                    log.warning(
                        "model %s took %.1f ms (%.1f ms CPU) inline, over its budget: back to "
                        "the thread pool",
                        key,
                        wall * 1e3,
                        cpu * 1e3,
                    )
        if self.pending >= self.max_pending:
            raise Overloaded(
                f"{self.pending} predictions are pending (some may be stuck past the "
                f"{self.timeout:g} s timeout); retry later",
                retry_after=max(1.0, self.timeout),
            )
        # A bare future, a done-callback and a timer: asyncio.wait_for + shield would cost a
        # Task and two extra futures per request, a measurable share of a 100 µs prediction.
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.pending += 1
        cf = self.pool.submit(self._timed, speed, fn, *args)
        cf.add_done_callback(lambda f: loop.call_soon_threadsafe(self._settle, waiter, f))
        timer = loop.call_later(self.timeout, self._expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()

    def _settle(self, waiter: asyncio.Future[Any], cf: Future[Any]) -> None:
        self.pending -= 1
        exc = cf.exception()  # always retrieved, even when the request already timed out
        if waiter.done():
            if exc is not None:
                log.warning("a prediction that had timed out failed later: %r", exc)
            return
        if exc is not None:
            waiter.set_exception(exc)
        else:
            waiter.set_result(cf.result())

    def _expire(self, waiter: asyncio.Future[Any]) -> None:
        if not waiter.done():
            waiter.set_exception(
                PredictionTimeout(
                    f"the prediction took longer than {self.timeout:g} s",
                    {"timeout_s": self.timeout},
                )
            )

    def shutdown(self) -> None:
        self.pool.shutdown(wait=False, cancel_futures=True)


class BaseHandler(web.RequestHandler):
    """JSON errors ``{"error", "error_type", "details"}`` without tracebacks."""

    store: ModelStore
    authorizer: Authorizer

    def initialize(self, server: ModelServer) -> None:
        self.server = server
        self.store = server.store
        self.authorizer = server.authorizer

    def compute_etag(self) -> None:  # hashing every prediction body buys nothing
        return None

    def check_xsrf_cookie(self) -> None:  # bearer tokens only; no cookies are ever read
        return None

    def send_json(self, obj: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(obj, option=_DUMPS_OPTS))

    def send_bytes(self, body: bytes) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(body)

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        exc = kwargs.get("exc_info", (None, None, None))[1]
        if isinstance(exc, ModelAPIError):
            body = exc.to_json()
            if isinstance(exc, NotReady):
                self.set_header("Retry-After", str(max(1, round(exc.retry_after))))
            if exc.status == 401:
                self.set_header("WWW-Authenticate", 'Bearer realm="mlfactory-models"')
        elif isinstance(exc, web.HTTPError) and status_code < 500:
            body = {
                "error": exc.log_message or self._reason,
                "error_type": "http_error",
                "details": {},
            }
        else:
            body = {"error": "internal server error", "error_type": "internal_error", "details": {}}
        self.set_header("Content-Type", "application/json")
        self.finish(orjson.dumps(body))

    def _handle_request_exception(self, e: BaseException) -> None:
        if isinstance(e, ModelAPIError):
            if e.status >= 500 and not isinstance(e, NotReady):
                # the model's exception (chained) goes to the server log, never to the client
                log.error("%s %s: %s", self.request.method, self.request.path, e, exc_info=e)
            if not self._finished:
                self.send_error(e.status, exc_info=(type(e), e, e.__traceback__))
            return
        super()._handle_request_exception(e)

    async def identify(self, model: str | None) -> Identity:
        return await self.authorizer.authorize(self.request.headers, model)

    def check_media_type(self, accepted: tuple[str, ...]) -> str:
        """The body's media type if the route reads it (no ``Content-Type``: JSON, which is
        what tritonclient sends without one), else 415."""
        raw = self.request.headers.get("Content-Type", "").strip()
        if not raw:
            return JSON
        kind, _, rest = raw.partition(";")
        kind = kind.strip().lower()
        params = _media_params(rest)
        if kind in accepted and (
            kind != JSON or params.get("charset", "utf-8").lower() in ("utf-8", "utf8")
        ):
            return kind
        raise UnsupportedMediaType(
            f"this route reads {' or '.join(accepted)} (UTF-8), not {raw!r}; send the body as "
            "JSON with 'Content-Type: application/json'",
            {"content_type": raw, "accepted": list(accepted)},
        )

    def json_body(self) -> dict[str, Any]:
        try:
            body = orjson.loads(self.request.body)
        except orjson.JSONDecodeError as e:
            raise BadRequest(f"the request body is not valid JSON: {e}") from None
        if not isinstance(body, dict):
            raise BadRequest("the request body must be a JSON object")
        return body


class NotFoundHandler(BaseHandler):
    def prepare(self) -> None:
        raise NotFound(f"no route {self.request.path}; the API lives under /{API_VERSION}/")


class LiveHandler(BaseHandler):
    def get(self) -> None:
        self.send_json({"live": True})


class ReadyHandler(BaseHandler):
    def get(self) -> None:
        # ready once loading is over, even if some packages failed: the rest is served, and
        # each failed model says why on its own (authenticated) ready route
        if not self.store.ready:
            raise NotReady(self.store.loading_error or "models are still loading", retry_after=1)
        self.send_json({"ready": True})


class ServerMetadataHandler(BaseHandler):
    async def get(self) -> None:
        # only the health routes are public (probes); the server's version is for callers
        await self.identify(None)
        self.send_json(
            {
                "name": "mlfactory-model-api",
                "version": mlfactory_version(),
                "extensions": ["predict", "model_aliases", "binary_tensor_data"],
                "api_version": API_VERSION,
                "output_schema_version": OUTPUT_SCHEMA_VERSION,
            }
        )


class ModelsHandler(BaseHandler):
    async def get(self) -> None:
        ident = await self.identify(None)
        if not self.store.ready:
            raise NotReady("models are still loading", retry_after=1)
        models = []
        for name in self.store.names():
            if not ident.may_use(name):
                continue
            e = self.store.entry(name)
            problem = self.store.problem(name)
            item: dict[str, Any] = {"name": name, "ready": problem is None, "reason": problem}
            if e.versions:
                latest = e.versions[max(e.versions, key=_version_key)]
                item |= {
                    "task": latest.task.value,
                    "versions": sorted(e.versions, key=_version_key),
                    "aliases": e.aliases,
                }
            if e.unavailable:
                item["unavailable"] = e.unavailable
            models.append(item)
        self.send_json({"models": models})


class ModelHandler(BaseHandler):
    """Routes under one model: resolve the version, then check the caller's scope for it."""

    async def resolve(self, name: str, ref: str | None) -> tuple[Model, str | None]:
        # auth first: an unauthenticated caller learns nothing about which models exist
        await self.identify(name)
        return self.store.get(name, ref)


def model_metadata(model: Model, store: ModelStore, alias: str | None) -> dict[str, Any]:
    e = store.entry(model.name)
    fw_name, fw_version = model.adapter.framework()
    card = getattr(model, "card", None)
    return {
        "name": model.name,
        "versions": sorted(e.versions, key=_version_key),
        "platform": f"mlfactory-{model.adapter.name}/{fw_name}",
        "inputs": [
            {"name": s.name, "datatype": s.datatype, "shape": list(s.shape)}
            for s in model.schema.inputs
        ],
        "outputs": [
            {"name": s.name, "datatype": s.datatype, "shape": list(s.shape)}
            for s in output_specs(model.task, model.labels, model.available_outputs())
        ],
        "parameters": {
            "model_version": model.version,
            "model_alias": alias,
            "aliases": e.aliases,
            "task": model.task.value,
            "labels": list(model.labels),
            "decision_rule": model.decision_rule.value,
            "threshold": model.threshold,
            "thresholds": None if model.thresholds is None else list(model.thresholds),
            "default_outputs": [
                n for n in model.available_outputs() if n not in ("decision_function",)
            ],
            "framework": {"name": fw_name, "version": fw_version},
            "output_schema_version": OUTPUT_SCHEMA_VERSION,
            "api_version": API_VERSION,
            "metrics": model.metrics,
            "created_at": None if card is None else card.created_at.isoformat(),
            "created_by": None if card is None else card.created_by,
            "source_notebook": None if card is None else card.source_notebook,
            "description": model.description,
        },
    }


class ModelMetadataHandler(ModelHandler):
    async def get(self, name: str, ref: str | None = None) -> None:
        model, alias = await self.resolve(name, ref)
        self.send_json(model_metadata(model, self.store, alias))


class ModelReadyHandler(ModelHandler):
    async def get(self, name: str, ref: str | None = None) -> None:
        await self.resolve(name, ref)
        self.send_json({"name": name, "ready": True})


class SchemaHandler(ModelHandler):
    async def get(self, name: str, ref: str | None = None) -> None:
        model, _ = await self.resolve(name, ref)
        self.send_json(
            {
                "request": request_json_schema(model.schema, model.task),
                "response": response_json_schema(model.task, model.labels),
            }
        )


class OpenAPIHandler(ModelHandler):
    async def get(self, name: str, ref: str | None = None) -> None:
        model, _ = await self.resolve(name, ref)
        e = self.store.entry(name)
        self.send_json(
            openapi_document(
                name=name,
                versions=sorted(e.versions, key=_version_key) + sorted(e.aliases),
                schema=model.schema,
                task=model.task,
                labels=model.labels,
                description=model.description,
                server_version=mlfactory_version(),
            )
        )


def _predict_job(model: Model, body: dict[str, Any], alias: str | None) -> bytes:
    """Worker thread: validate records, one model call, shape, encode."""
    records = body.get("records")
    if records is None:
        unknown = sorted(set(body) - {"outputs", "parameters"})
        hint = f"; got {', '.join(unknown)}" if unknown else ""
        raise InvalidInput(f"the body needs 'records': a list of objects{hint}", field="records")
    for key in body:
        if key not in ("records", "outputs", "parameters"):
            raise InvalidInput(
                f"unknown field {key!r}; the body takes records, outputs, parameters", field=key
            )
    params = body.get("parameters")
    if params is not None and not isinstance(params, dict):
        raise InvalidInput("parameters must be an object", field="parameters")
    x = records_to_input(records, model.schema)
    shaped = model.run(x, body.get("outputs"), params)
    return orjson.dumps(
        envelope(shaped, model_name=model.name, model_version=model.version, model_alias=alias),
        option=_DUMPS_OPTS,
    )


def _infer_job(model: Model, req: Any, alias: str | None) -> bytes:
    x = _tensors_to_input(req.inputs, model.schema)
    shaped = model.run(x, req.outputs, req.parameters or None)
    resp = encode_infer_response(
        shaped,
        model_name=model.name,
        model_version=model.version,
        model_alias=alias,
        request_id=req.id,
    )
    return orjson.dumps(resp, option=_DUMPS_OPTS)


class PredictHandler(ModelHandler):
    async def post(self, name: str, ref: str | None = None) -> None:
        model, alias = await self.resolve(name, ref)
        self.check_media_type(PREDICT_MEDIA_TYPES)
        body = self.json_body()
        records = body.get("records")
        rows = len(records) if isinstance(records, list) else 1
        self.send_bytes(
            await self.server.runner.call(
                _predict_job, model, body, alias, key=(model.name, model.version), rows=rows
            )
        )


class InferHandler(ModelHandler):
    async def post(self, name: str, ref: str | None = None) -> None:
        model, alias = await self.resolve(name, ref)
        kind = self.check_media_type(INFER_MEDIA_TYPES)
        header = self.request.headers.get("Inference-Header-Content-Length")
        if header is None and kind == SAGEMAKER_TRITON_BINARY:
            # SageMaker's Triton carries the JSON header's length in the media type
            header = _media_params(self.request.headers["Content-Type"].partition(";")[2]).get(
                "json-header-size"
            )
            if header is None:
                raise BadRequest(f"{SAGEMAKER_TRITON_BINARY} needs a json-header-size parameter")
        length = None
        if header is not None:
            if not header.isdigit() or int(header) > len(self.request.body):
                raise BadRequest("Inference-Header-Content-Length is not a valid length")
            length = int(header)
        req = decode_infer_request(self.request.body, length)
        rows = max((len(a) for a in req.inputs.values()), default=1)
        self.send_bytes(
            await self.server.runner.call(
                _infer_job, model, req, alias, key=(model.name, model.version), rows=rows
            )
        )


_MODEL = r"/v2/models/([^/]+)(?:/versions/([^/]+))?"
JSON = "application/json"
SAGEMAKER_TRITON_BINARY = "application/vnd.sagemaker-triton.binary+json"
PREDICT_MEDIA_TYPES = (JSON,)
# Triton's binary tensor extension: the JSON header, then raw tensor bytes
INFER_MEDIA_TYPES = (JSON, "application/octet-stream", SAGEMAKER_TRITON_BINARY)


def _media_params(text: str) -> dict[str, str]:
    """``; charset=utf-8; json-header-size=12`` -> {"charset": "utf-8", ...}"""
    params = {}
    for part in text.split(";"):
        key, _, value = part.partition("=")
        if key.strip():
            params[key.strip().lower()] = value.strip().strip('"')
    return params


_access = logging.getLogger("tornado.access")


def _log_request(handler: web.RequestHandler) -> None:
    # successful predictions are logged at DEBUG: at thousands per second an INFO line each
    # costs more than the prediction; errors are always logged
    status = handler.get_status()
    if status < 400 and not _access.isEnabledFor(logging.DEBUG):
        return
    level = logging.DEBUG if status < 400 else logging.WARNING if status < 500 else logging.ERROR
    ms = 1000.0 * handler.request.request_time()
    _access.log(level, "%d %s %.2fms", status, handler._request_summary(), ms)


class ModelServer:
    """Serves models from an in-process store. Build with models or a loader, then ``app()``."""

    def __init__(
        self,
        *,
        authorizer: Authorizer,
        timeout: float = 30.0,
        workers: int = 4,
        max_pending: int | None = None,
        base_url: str = "/",
        execution: str = "auto",
        runner: Runner | None = None,
    ) -> None:
        self.store = ModelStore()
        self.authorizer = authorizer
        self.runner = runner or Runner(
            workers=workers, timeout=timeout, max_pending=max_pending, execution=execution
        )
        self.base_url = "/" + base_url.strip("/") if base_url.strip("/") else ""

    def add(self, model: Model, aliases: Iterable[str] = ()) -> None:
        self.store.add(model, aliases)

    def mark_ready(self) -> None:
        # models live for the whole process: move them out of the collector's generations so
        # full collections do not walk them (MLflow's 121 ms p99 came from those pauses)
        gc.collect()
        gc.freeze()
        self.store.ready = True

    async def load(self, loader: Callable[[], Loaded | list[tuple[Model, list[str]]]]) -> None:
        """Load models in a thread while the server already answers (503 until ready).

        What failed to load is logged and refused with its reason; the rest is served.
        """
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(None, loader)
        except Exception as e:
            self.store.loading_error = f"loading models failed: {e}"
            log.exception("loading models failed")
            return
        if not isinstance(loaded, Loaded):
            loaded = Loaded(models=loaded)
        for model, aliases in loaded.models:
            self.add(model, aliases)
            log.info("serving %s version %s %s", model.name, model.version, aliases or "")
        for (name, ref), reason in loaded.unavailable.items():
            self.store.add_unavailable(name, ref, reason)
            what = name if ref is None else f"{name} version {ref}"
            log.error("not serving %s: %s", what, reason)
        self.mark_ready()

    def app(self, **settings: Any) -> web.Application:
        p = self.base_url
        kw = {"server": self}
        routes = [
            (p + r"/v2/health/live", LiveHandler, kw),
            (p + r"/v2/health/ready", ReadyHandler, kw),
            (p + r"/v2/?", ServerMetadataHandler, kw),
            (p + r"/v2/models/?", ModelsHandler, kw),
            (p + _MODEL + r"/?", ModelMetadataHandler, kw),
            (p + _MODEL + r"/ready", ModelReadyHandler, kw),
            (p + _MODEL + r"/infer", InferHandler, kw),
            (p + _MODEL + r"/predict", PredictHandler, kw),
            (p + _MODEL + r"/schema", SchemaHandler, kw),
            (p + _MODEL + r"/openapi\.json", OpenAPIHandler, kw),
        ]
        return web.Application(
            routes,
            default_handler_class=NotFoundHandler,
            default_handler_args=kw,
            compress_response=False,
            log_function=_log_request,
            **settings,
        )
