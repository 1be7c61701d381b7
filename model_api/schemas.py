"""Per-model input and output schemas: validation of every request, JSON Schema and OpenAPI.

Pure: turns decoded JSON (records) or decoded tensors into the model's input and names the
offending field when something does not fit. The hot path (numeric tabular records) is a
plain loop with exact type checks; it runs on every request.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import InvalidInput
from .specs import (  # noqa: F401  (re-exported: the schema types' old home)
    _JSON_SCHEMA_TYPE,
    _JSON_TYPES,
    _NUMERIC,
    DATATYPE_NAMES,
    ModelSchema,
    TensorSpec,
    tabular_schema,
)
from .tasks import API_VERSION, OUTPUT_SCHEMA_VERSION, Task, known_outputs

DATATYPES: dict[str, Any] = {
    "FP64": np.float64,
    "FP32": np.float32,
    "INT64": np.int64,
    "INT32": np.int32,
    "BOOL": np.bool_,
    "BYTES": np.object_,
}


def infer_input_schema(model: Any = None, sample: Any = None) -> tuple[TensorSpec, ...]:
    """Input specs from a fitted estimator (``feature_names_in_``/``n_features_in_``) or a
    sample (numpy array or a DataFrame-like with ``columns`` and ``dtypes``)."""
    if sample is not None and hasattr(sample, "columns") and hasattr(sample, "dtypes"):
        specs = []
        for name, dtype in zip(sample.columns, sample.dtypes, strict=True):
            kind = getattr(dtype, "kind", "O")
            dt = {"f": "FP64", "i": "INT64", "u": "INT64", "b": "BOOL"}.get(kind, "BYTES")
            specs.append(TensorSpec(name=str(name), datatype=dt))
        return tuple(specs)
    names = getattr(model, "feature_names_in_", None)
    if names is not None:
        return tabular_schema([str(n) for n in names])
    k = getattr(model, "n_features_in_", None)
    if k is None and sample is not None:
        arr = np.asarray(sample)
        k = arr.shape[1] if arr.ndim == 2 else 1
    if k is None:
        raise ValueError(
            "cannot tell the model's inputs: pass input_schema=[...] or a sample of the inputs"
        )
    return tabular_schema([f"x{i}" for i in range(int(k))])


# --- request validation -----------------------------------------------------------------------


def _type_error(spec: TensorSpec, value: Any, where: str) -> InvalidInput:
    want = _JSON_SCHEMA_TYPE[spec.datatype]
    got = "null" if value is None else type(value).__name__
    return InvalidInput(
        f"{where} must be a {want} ({spec.datatype}), got {got}",
        field=where,
        details={"expected": spec.datatype},
    )


def records_to_input(records: Any, schema: ModelSchema) -> Any:
    """Validate JSON records and build the model input.

    Tabular numeric schemas give a float64 ``[n, k]`` array in schema order; others give a dict
    of column name -> numpy array (``object`` arrays of ``str`` for BYTES).
    """
    if not isinstance(records, list):
        raise InvalidInput("records must be a list of objects", field="records")
    if not records:
        raise InvalidInput("records is empty", field="records")
    specs = schema.inputs
    names = schema.input_names
    k = len(names)
    rows: list[list[Any]] = []
    append = rows.append
    for i, rec in enumerate(records):
        if type(rec) is not dict:
            raise InvalidInput(f"records[{i}] must be an object", field=f"records[{i}]")
        try:
            row = [rec[n] for n in names]
        except KeyError as e:
            raise InvalidInput(
                f"records[{i}] is missing {e.args[0]!r}", field=f"records[{i}].{e.args[0]}"
            ) from None
        if len(rec) != k:
            extra = sorted(set(rec) - set(names))
            raise InvalidInput(
                f"records[{i}] has unknown field(s) {', '.join(map(repr, extra))}; "
                f"the model takes: {', '.join(names)}",
                field=f"records[{i}].{extra[0]}",
            )
        for spec, v in zip(specs, row, strict=True):
            if type(v) not in _JSON_TYPES[spec.datatype]:
                if v is None and spec.nullable:
                    continue
                raise _type_error(spec, v, f"records[{i}].{spec.name}")
        append(row)
    return _assemble_rows(rows, schema)


def _assemble_rows(rows: list[list[Any]], schema: ModelSchema) -> Any:
    if schema.tabular:
        arr = np.array(rows, dtype=np.float64)
        # nulls in nullable columns arrive as NaN
        return arr
    out: dict[str, Any] = {}
    for j, spec in enumerate(schema.inputs):
        col = [r[j] for r in rows]
        out[spec.name] = _column_array(col, spec, "records[*]." + spec.name)
    return out


def _column_array(col: list[Any], spec: TensorSpec, where: str) -> np.ndarray:
    if spec.datatype == "BYTES":
        arr = np.empty(len(col), dtype=object)
        arr[:] = col
        return arr
    try:
        arr = np.asarray(col, dtype=DATATYPES[spec.datatype])
    except (ValueError, TypeError) as e:
        raise InvalidInput(f"{where}: {e}", field=where) from None
    _check_row_shape(arr, spec, where)
    return arr


def _check_row_shape(arr: np.ndarray, spec: TensorSpec, where: str) -> None:
    want = spec.row_shape
    got = arr.shape[1:]
    if len(got) != len(want) or any(w not in (-1, g) for w, g in zip(want, got, strict=True)):
        raise InvalidInput(
            f"{where} has shape {list(got)} per row; the model takes {list(want)}",
            field=where,
        )


def tensors_to_input(tensors: dict[str, np.ndarray], schema: ModelSchema) -> Any:
    """Build the model input from decoded Open Inference Protocol tensors (name -> array).

    Takes one tensor per schema input (each ``[n, *row_shape]``), or, for tabular schemas, a
    single ``[n, k]`` tensor named ``input`` holding the columns in schema order.
    """
    names = schema.input_names
    if schema.tabular and set(tensors) == {"input"} and "input" not in names:
        arr = tensors["input"]
        if arr.ndim != 2 or arr.shape[1] != len(names):
            raise InvalidInput(
                f"inputs[0] 'input' has shape {list(arr.shape)}; expected [n, {len(names)}] "
                f"with columns {', '.join(names)}",
                field="inputs[0].shape",
            )
        if arr.dtype == object or arr.dtype.kind not in "fiub":
            raise InvalidInput("inputs[0] 'input' must be numeric", field="inputs[0].datatype")
        return np.ascontiguousarray(arr, dtype=np.float64)
    unknown = sorted(set(tensors) - set(names))
    if unknown:
        raise InvalidInput(
            f"unknown input {unknown[0]!r}; the model takes: {', '.join(names)}",
            field=f"inputs.{unknown[0]}",
        )
    missing = [n for n in names if n not in tensors]
    if missing:
        raise InvalidInput(f"missing input {missing[0]!r}", field=f"inputs.{missing[0]}")
    n_rows = {len(a) for a in tensors.values()}
    if len(n_rows) != 1:
        raise InvalidInput("inputs have different numbers of rows", field="inputs")
    if schema.tabular:
        for spec in schema.inputs:
            a = tensors[spec.name]
            if a.dtype == object or a.dtype.kind not in "fiub":
                raise InvalidInput(
                    f"input {spec.name!r} must be numeric ({spec.datatype})",
                    field=f"inputs.{spec.name}.datatype",
                )
            if a.ndim != 1:
                a = a.reshape(len(a), -1)
                if a.shape[1] != 1:
                    raise InvalidInput(
                        f"input {spec.name!r} must be one value per row",
                        field=f"inputs.{spec.name}.shape",
                    )
        return np.column_stack([tensors[n].reshape(-1) for n in names]).astype(
            np.float64, copy=False
        )
    out = {}
    for spec in schema.inputs:
        a = tensors[spec.name]
        where = f"inputs.{spec.name}"
        if (spec.datatype == "BYTES") != (a.dtype == object):
            raise InvalidInput(f"input {spec.name!r} must be {spec.datatype}", field=where)
        if spec.row_shape == () and a.ndim == 2 and a.shape[1] == 1:
            a = a[:, 0]
        _check_row_shape(a, spec, where)
        out[spec.name] = a
    return out


def _accepted(schema: ModelSchema) -> str:
    return (
        f"pass a 2-D array [n, {len(schema.inputs)}] with columns "
        f"{', '.join(schema.input_names)}, a DataFrame, a dict of columns, "
        "or records (a list of dicts, as the HTTP API takes)"
    )


def _is_record(x: dict[Any, Any]) -> bool:
    """A dict of scalars is one record; a dict holding arrays or lists is a dict of columns."""
    return bool(x) and all(v is None or np.ndim(v) == 0 for v in x.values())


def _plain(record: Any) -> Any:
    # in-process records may hold numpy scalars (X[0, 1]); JSON never does
    if type(record) is not dict:
        return record
    return {k: v.item() if isinstance(v, np.generic) else v for k, v in record.items()}


def array_to_input(x: Any, schema: ModelSchema) -> Any:
    """In-process calls: a 2-D array in schema column order, a DataFrame, a dict of columns, or
    records (a list of dicts, or one dict of scalars), validated as the server validates them."""
    if isinstance(x, dict) and _is_record(x):
        return records_to_input([_plain(x)], schema)
    if isinstance(x, dict):
        # a list of str would become a fixed-width '<U' array: BYTES columns are object arrays
        text = {s.name for s in schema.inputs if s.datatype == "BYTES"}
        return tensors_to_input(
            {k: np.asarray(v, dtype=object if k in text else None) for k, v in x.items()}, schema
        )
    if hasattr(x, "columns") and hasattr(x, "to_dict"):  # a DataFrame, without importing pandas
        return records_to_input(x.to_dict(orient="records"), schema)
    if isinstance(x, (list, tuple)) and x and isinstance(x[0], dict):
        return records_to_input([_plain(r) for r in x], schema)
    if isinstance(x, (str, bytes, set, frozenset)) or x is None:
        raise InvalidInput(
            f"cannot predict from a {type(x).__name__}: {_accepted(schema)}", field="inputs"
        )
    if schema.tabular:
        try:
            arr = np.asarray(x, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise InvalidInput(
                f"cannot read the input as numbers ({e}): {_accepted(schema)}", field="inputs"
            ) from None
        if arr.ndim == 1:
            arr = arr.reshape(1, -1)
        if arr.ndim != 2 or arr.shape[1] != len(schema.inputs):
            raise InvalidInput(
                f"expected an array of shape [n, {len(schema.inputs)}] "
                f"({', '.join(schema.input_names)}), got {list(arr.shape)}; "
                "or pass a DataFrame, a dict of columns or records (a list of dicts)",
                field="inputs",
            )
        return arr
    if len(schema.inputs) == 1:
        spec = schema.inputs[0]
        try:
            arr = np.asarray(x, dtype=DATATYPES[spec.datatype])
        except (TypeError, ValueError) as e:
            raise InvalidInput(
                f"cannot read the input as {spec.datatype} ({e}): {_accepted(schema)}",
                field="inputs",
            ) from None
        return tensors_to_input({spec.name: arr}, schema)
    raise InvalidInput(
        "this model takes several inputs: pass a DataFrame, a dict of columns or records "
        "(a list of dicts)",
        field="inputs",
    )


# --- export -----------------------------------------------------------------------------------


def _value_schema(spec: TensorSpec) -> dict[str, Any]:
    s: dict[str, Any] = {"type": _JSON_SCHEMA_TYPE[spec.datatype]}
    for dim in reversed(spec.row_shape):
        arr: dict[str, Any] = {"type": "array", "items": s}
        if dim >= 0:
            arr["minItems"] = arr["maxItems"] = dim
        s = arr
    if spec.nullable:
        s = {"anyOf": [s, {"type": "null"}]}
    if spec.description:
        s["description"] = spec.description
    return s


def _record_output_schema(task: Task, labels: Sequence[str]) -> dict[str, Any]:
    per_label = {
        "type": "object",
        "properties": {lab: {"type": "number"} for lab in labels},
        "additionalProperties": False,
    }
    num = {"type": "number"}
    strs = {"type": "array", "items": {"type": "string"}}
    nums = {"type": "array", "items": {"type": ["number", "null"]}}
    props: dict[str, Any]
    if task is Task.CLASSIFICATION:
        props = {
            "label": {"type": "string", "enum": list(labels)},
            "score": {"type": ["number", "null"]},
            "probabilities": per_label,
            "logits": per_label,
            "decision_function": {"anyOf": [per_label, num]},
        }
    elif task is Task.MULTI_LABEL:
        props = {
            "labels": {"type": "array", "items": {"enum": list(labels)}},
            "probabilities": per_label,
            "logits": per_label,
        }
    elif task is Task.REGRESSION:
        props = {k: {"anyOf": [num, nums]} for k in ("prediction", "std", "lower", "upper")}
    else:
        props = {
            "generated_text": strs,
            "sequence_score": nums,
            "finish_reason": strs,
            "token_logprobs": {"type": "array", "items": {"anyOf": [nums, {"type": "null"}]}},
        }
    return {"type": "object", "properties": props, "additionalProperties": False}


def request_json_schema(schema: ModelSchema, task: Task) -> dict[str, Any]:
    """JSON Schema (2020-12) of the ``/predict`` request body."""
    record = {
        "type": "object",
        "properties": {s.name: _value_schema(s) for s in schema.inputs},
        "required": list(schema.input_names),
        "additionalProperties": False,
    }
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "records": {"type": "array", "items": record, "minItems": 1},
            "outputs": {"type": "array", "items": {"enum": list(known_outputs(task))}},
            "parameters": {"type": "object"},
        },
        "required": ["records"],
        "additionalProperties": False,
    }


def response_json_schema(task: Task, labels: Sequence[str]) -> dict[str, Any]:
    """JSON Schema (2020-12) of the ``/predict`` response body."""
    thresholds = {"anyOf": [{"type": "null"}, {"type": "object"}]}
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {
            "model_name": {"type": "string"},
            "model_version": {"type": "string"},
            "model_alias": {"type": ["string", "null"]},
            "api_version": {"const": API_VERSION},
            "output_schema_version": {"const": OUTPUT_SCHEMA_VERSION},
            "task": {"const": str(task)},
            "decision_rule": {
                "enum": ["argmax", "threshold", "model_predict", "per_label_threshold"]
            },
            "thresholds": thresholds,
            "labels": {"type": "array", "items": {"type": "string"}},
            "predictions": {"type": "array", "items": _record_output_schema(task, labels)},
        },
        "required": [
            "model_name",
            "model_version",
            "api_version",
            "output_schema_version",
            "task",
            "decision_rule",
            "thresholds",
            "predictions",
        ],
    }


ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "error_type": {"type": "string"},
        "details": {"type": "object"},
    },
    "required": ["error", "error_type", "details"],
}


def openapi_document(
    *,
    name: str,
    versions: Sequence[str],
    schema: ModelSchema,
    task: Task,
    labels: Sequence[str],
    description: str = "",
    server_version: str = "",
) -> dict[str, Any]:
    """OpenAPI 3.1 document for one model's routes."""
    req = request_json_schema(schema, task)
    resp = response_json_schema(task, labels)
    for s in (req, resp):
        s.pop("$schema", None)
    err = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}
    errors = {
        "400": {"description": "Malformed body", **err},
        "401": {"description": "No or bad credentials", **err},
        "403": {"description": "Credentials lack this model's scope", **err},
        "404": {"description": "Unknown model or version", **err},
        "415": {"description": "The body's Content-Type is not one this route reads", **err},
        "422": {"description": "Input breaks the schema (details.field names where)", **err},
        "500": {"description": "The model failed (no traceback is sent)", **err},
        "503": {
            "description": "Not ready or overloaded (see Retry-After), or this model or "
            "version failed to load (model_unavailable, details.reason says why)",
            **err,
        },
        "504": {"description": "The prediction took longer than the server's timeout", **err},
    }
    version_param = {
        "name": "version",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": "A version number or an alias; known: " + ", ".join(versions),
    }
    predict = {
        "post": {
            "summary": f"Predict with {name}: records in, task-shaped records out",
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": {"$ref": "#/components/schemas/Request"}}
                },
            },
            "responses": {
                "200": {
                    "description": "Predictions, with the decision rule and both versions",
                    "content": {
                        "application/json": {"schema": {"$ref": "#/components/schemas/Response"}}
                    },
                },
                **errors,
            },
        }
    }
    infer = {
        "post": {
            "summary": "Open Inference Protocol (KServe v2) inference",
            "requestBody": {
                "required": True,
                # Triton's binary tensors: JSON header, then raw bytes; the header's length
                # in Inference-Header-Content-Length or in the SageMaker media type
                "content": {
                    "application/json": {},
                    "application/octet-stream": {},
                    "application/vnd.sagemaker-triton.binary+json": {},
                },
            },
            "responses": {"200": {"description": "Inference response"}, **errors},
        }
    }
    base = f"/{API_VERSION}/models/{name}"
    versioned_predict = {"post": {**predict["post"], "parameters": [version_param]}}
    versioned_infer = {"post": {**infer["post"], "parameters": [version_param]}}
    return {
        "openapi": "3.1.0",
        "info": {
            "title": f"{name} ({task})",
            "version": server_version or OUTPUT_SCHEMA_VERSION,
            "description": description,
        },
        "paths": {
            f"{base}/predict": predict,
            f"{base}/versions/{{version}}/predict": versioned_predict,
            f"{base}/infer": infer,
            f"{base}/versions/{{version}}/infer": versioned_infer,
            base: {
                "get": {"summary": "Model metadata", "responses": {"200": {"description": "OK"}}}
            },
            f"{base}/ready": {
                "get": {"summary": "Readiness", "responses": {"200": {"description": "Ready"}}}
            },
        },
        "components": {
            "schemas": {"Request": req, "Response": resp, "Error": ERROR_SCHEMA},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"bearer": []}],
    }
