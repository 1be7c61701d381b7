"""The model server's REST handlers: Open Inference Protocol routes plus ``/predict``.

Thin handlers over ``store`` (which model and version), ``auth`` (may the caller use it),
``schemas``/``protocol`` (the request and the response) and ``runner`` (where the model
work runs). Errors are JSON ``{"error", "error_type", "details"}``, never a traceback. The
route table ends the module.
"""

from __future__ import annotations

import logging
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
    UnsupportedMediaType,
)
from .package import mlfactory_version
from .protocol import decode_infer_request, encode_infer_response, output_specs
from .results import envelope
from .runner import Runner
from .schemas import openapi_document, records_to_input, request_json_schema, response_json_schema
from .schemas import tensors_to_input as _tensors_to_input
from .store import ModelStore, version_key
from .tasks import API_VERSION, OUTPUT_SCHEMA_VERSION
from .wrapper import Model

log = logging.getLogger("mlfactory.model_api")
_DUMPS_OPTS = orjson.OPT_SERIALIZE_NUMPY


class BaseHandler(web.RequestHandler):
    """JSON errors ``{"error", "error_type", "details"}`` without tracebacks."""

    store: ModelStore
    authorizer: Authorizer
    runner: Runner

    def initialize(self, store: ModelStore, authorizer: Authorizer, runner: Runner) -> None:
        self.store = store
        self.authorizer = authorizer
        self.runner = runner

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
        access = None if model is None else self.store.access(model)
        return await self.authorizer.authorize(self.request.headers, model, access)

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
            if not ident.may_use(name, self.store.access(name)):
                continue
            e = self.store.entry(name)
            problem = self.store.problem(name)
            item: dict[str, Any] = {"name": name, "ready": problem is None, "reason": problem}
            if e.versions:
                latest = e.versions[max(e.versions, key=version_key)]
                item |= {
                    "task": latest.task.value,
                    "versions": sorted(e.versions, key=version_key),
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
        "versions": sorted(e.versions, key=version_key),
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
                versions=sorted(e.versions, key=version_key) + sorted(e.aliases),
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
            await self.runner.call(
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
            await self.runner.call(
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


# Patterns are relative: ModelServer.app() prefixes them with its base_url and hands each
# handler the store, the authorizer and the runner.
default_handlers = [
    (r"/v2/health/live", LiveHandler),
    (r"/v2/health/ready", ReadyHandler),
    (r"/v2/?", ServerMetadataHandler),
    (r"/v2/models/?", ModelsHandler),
    (_MODEL + r"/?", ModelMetadataHandler),
    (_MODEL + r"/ready", ModelReadyHandler),
    (_MODEL + r"/infer", InferHandler),
    (_MODEL + r"/predict", PredictHandler),
    (_MODEL + r"/schema", SchemaHandler),
    (_MODEL + r"/openapi\.json", OpenAPIHandler),
]
