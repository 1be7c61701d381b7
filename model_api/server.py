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
    NotFound,
    NotReady,
    Overloaded,
    PredictionTimeout,
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


class ModelStore:
    """The models this server serves: name -> numbered versions and aliases."""

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

    def names(self) -> list[str]:
        return sorted(self._models)

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
        if ref is None:
            alias = "production" if "production" in e.aliases else None
            version = e.aliases["production"] if alias else max(e.versions, key=_version_key)
            return e.versions[version], alias
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


def load_repository(
    repo: ModelRepository, names: Iterable[str] | None = None
) -> list[tuple[Model, list[str]]]:
    """Every version of the named models (all models by default) with their aliases."""
    out = []
    for name in names or repo.models():
        aliases = repo.aliases(name)
        versions = repo.versions(name)
        if not versions:
            raise NotFound(f"no model named {name!r} in {repo.root}")
        for v in versions:
            model = repo.load(name, v)
            out.append((model, [a for a, av in aliases.items() if av == v]))
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
        if not self.store.ready:
            raise NotReady(self.store.loading_error or "models are still loading", retry_after=1)
        self.send_json({"ready": True})


class ServerMetadataHandler(BaseHandler):
    def get(self) -> None:
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
            latest = e.versions[max(e.versions, key=_version_key)]
            models.append(
                {
                    "name": name,
                    "task": latest.task.value,
                    "versions": sorted(e.versions, key=_version_key),
                    "aliases": e.aliases,
                }
            )
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
        header = self.request.headers.get("Inference-Header-Content-Length")
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

    async def load(self, loader: Callable[[], list[tuple[Model, list[str]]]]) -> None:
        """Load models in a thread while the server already answers (503 until ready)."""
        try:
            loaded = await asyncio.get_running_loop().run_in_executor(None, loader)
        except Exception as e:
            self.store.loading_error = f"loading models failed: {e}"
            log.exception("loading models failed")
            return
        for model, aliases in loaded:
            self.add(model, aliases)
            log.info("serving %s version %s %s", model.name, model.version, aliases or "")
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
