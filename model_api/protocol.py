"""Open Inference Protocol (KServe "V2") codecs: request tensors in, task columns out.

Pure functions over bytes and dicts. Inputs may use JSON ``data`` or Triton's binary tensor
extension (``Inference-Header-Content-Length``), which ``tritonclient.http`` sends by default;
responses are always JSON, which every V2 client reads.
"""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from .errors import BadRequest, InvalidInput
from .outputs import Shaped
from .schemas import DATATYPES, TensorSpec
from .tasks import API_VERSION, OUTPUT_SCHEMA_VERSION, Task

# request-level parameters that belong to the protocol, not to the model
_PROTOCOL_PARAMS = frozenset(
    {
        "binary_data_output",
        "content_type",
        "headers",
        "timeout",
        "priority",
        "sequence_id",
        "sequence_start",
        "sequence_end",
    }
)


@dataclass(slots=True)
class InferRequest:
    id: str | None
    inputs: dict[str, np.ndarray]
    outputs: list[str] | None
    parameters: dict[str, Any]


def _bytes_tensor(buf: bytes, count: int, where: str) -> np.ndarray:
    """Triton's BYTES layout: each element is a 4-byte little-endian length, then the bytes."""
    out = np.empty(count, dtype=object)
    pos = 0
    for i in range(count):
        if pos + 4 > len(buf):
            raise InvalidInput(f"{where}: binary BYTES data is truncated", field=where)
        (n,) = struct.unpack_from("<I", buf, pos)
        pos += 4
        try:
            out[i] = buf[pos : pos + n].decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidInput(f"{where}: element {i} is not UTF-8", field=where) from None
        pos += n
    if pos != len(buf):
        raise InvalidInput(f"{where}: binary BYTES data has trailing bytes", field=where)
    return out


def decode_infer_request(body: bytes, header_length: int | None = None) -> InferRequest:
    """Parse an infer request body; errors name the offending ``inputs[i]`` field."""
    head = body if header_length is None else body[:header_length]
    try:
        req = orjson.loads(head)
    except orjson.JSONDecodeError as e:
        raise BadRequest(f"the request body is not valid JSON: {e}") from None
    if not isinstance(req, dict):
        raise BadRequest("the request body must be a JSON object with 'inputs'")
    inputs = req.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise InvalidInput("'inputs' must be a non-empty list of tensors", field="inputs")
    offset = 0 if header_length is None else header_length
    tensors: dict[str, np.ndarray] = {}
    for i, t in enumerate(inputs):
        where = f"inputs[{i}]"
        if not isinstance(t, dict):
            raise InvalidInput(f"{where} must be an object", field=where)
        name, datatype, shape = t.get("name"), t.get("datatype"), t.get("shape")
        if not isinstance(name, str) or not name:
            raise InvalidInput(f"{where}.name must be a string", field=f"{where}.name")
        if datatype not in DATATYPES:
            raise InvalidInput(
                f"{where}.datatype {datatype!r} is not one of {', '.join(DATATYPES)}",
                field=f"{where}.datatype",
            )
        if (
            not isinstance(shape, list)
            or not shape
            or not all(type(d) is int and d >= 0 for d in shape)
        ):
            raise InvalidInput(
                f"{where}.shape must be a list of non-negative integers", field=f"{where}.shape"
            )
        count = math.prod(shape)
        params = t.get("parameters") or {}
        size = params.get("binary_data_size") if isinstance(params, dict) else None
        if size is not None:
            if header_length is None or type(size) is not int or offset + size > len(body):
                raise InvalidInput(
                    f"{where} announces {size} binary bytes the body does not hold",
                    field=f"{where}.parameters.binary_data_size",
                )
            chunk = body[offset : offset + size]
            offset += size
            if datatype == "BYTES":
                arr = _bytes_tensor(chunk, count, where)
            else:
                dtype = np.dtype(DATATYPES[datatype])
                if size != count * dtype.itemsize:
                    raise InvalidInput(
                        f"{where} has {size} bytes, shape {shape} of {datatype} needs "
                        f"{count * dtype.itemsize}",
                        field=f"{where}.parameters.binary_data_size",
                    )
                arr = np.frombuffer(chunk, dtype=dtype.newbyteorder("<"))
        else:
            data = t.get("data")
            if not isinstance(data, list):
                raise InvalidInput(f"{where}.data must be a list", field=f"{where}.data")
            arr = _json_tensor(data, datatype, where)
        if arr.size != count:
            raise InvalidInput(
                f"{where} has {arr.size} values, shape {shape} needs {count}",
                field=f"{where}.data",
            )
        if name in tensors:
            raise InvalidInput(f"{where}: input {name!r} given twice", field=f"{where}.name")
        tensors[name] = arr.reshape(shape)
    outputs = req.get("outputs")
    names = None
    if outputs is not None:
        if not isinstance(outputs, list) or not all(
            isinstance(o, dict) and isinstance(o.get("name"), str) for o in outputs
        ):
            raise InvalidInput("'outputs' must be a list of {\"name\": ...}", field="outputs")
        names = [o["name"] for o in outputs]
    params = req.get("parameters") or {}
    if not isinstance(params, dict):
        raise InvalidInput("'parameters' must be an object", field="parameters")
    model_params = {k: v for k, v in params.items() if k not in _PROTOCOL_PARAMS}
    rid = req.get("id")
    return InferRequest(None if rid is None else str(rid), tensors, names, model_params)


def _json_tensor(data: list[Any], datatype: str, where: str) -> np.ndarray:
    if datatype == "BYTES":
        flat = np.asarray(data, dtype=object).ravel()
        for j, v in enumerate(flat):
            if not isinstance(v, str):
                raise InvalidInput(
                    f"{where}.data[{j}] must be a string (BYTES)", field=f"{where}.data"
                )
        return flat
    try:
        arr = np.asarray(data)
    except ValueError:
        raise InvalidInput(f"{where}.data is ragged", field=f"{where}.data") from None
    kind = arr.dtype.kind
    if (
        kind not in "biuf"
        or (datatype == "BOOL") != (kind == "b")
        or (datatype.startswith("INT") and kind == "f")  # no silent truncation
    ):
        raise InvalidInput(f"{where}.data does not hold {datatype} values", field=f"{where}.data")
    return arr.astype(DATATYPES[datatype], copy=False).ravel()


# --- outputs ----------------------------------------------------------------------------------


def _tensor(name: str, col: Any, labels: tuple[str, ...], task: Task) -> dict[str, Any]:
    if isinstance(col, np.ndarray):
        if col.dtype == object:
            return {
                "name": name,
                "datatype": "BYTES",
                "shape": list(col.shape),
                "data": col.tolist(),
            }
        datatype = "BOOL" if col.dtype == np.bool_ else "FP64"
        t = {
            "name": name,
            "datatype": datatype,
            "shape": list(col.shape),
            "data": np.ascontiguousarray(
                col, np.bool_ if datatype == "BOOL" else np.float64
            ).ravel(),
        }
        if col.ndim == 2 and col.shape[1] == len(labels) and labels:
            t["parameters"] = {"labels": list(labels)}
        return t
    # seq2seq: per row lists of candidates
    rows = len(col)
    width = len(col[0]) if rows else 0
    flat = [v for row in col for v in row]
    if name == "token_logprobs":
        return {
            "name": name,
            "datatype": "BYTES",
            "shape": [rows, width],
            "data": [orjson.dumps(v).decode() for v in flat],
            "parameters": {"content_type": "json"},
        }
    if name == "sequence_score":
        return {
            "name": name,
            "datatype": "FP64",
            "shape": [rows, width],
            "data": [float("nan") if v is None else v for v in flat],
        }
    return {"name": name, "datatype": "BYTES", "shape": [rows, width], "data": flat}


def encode_infer_response(
    shaped: Shaped,
    *,
    model_name: str,
    model_version: str,
    model_alias: str | None,
    request_id: str | None,
) -> dict[str, Any]:
    """The infer response; the rule, thresholds and versions ride in ``parameters``."""
    resp: dict[str, Any] = {
        "model_name": model_name,
        "model_version": model_version,
        "parameters": {
            "api_version": API_VERSION,
            "output_schema_version": OUTPUT_SCHEMA_VERSION,
            "task": shaped.task.value,
            "decision_rule": shaped.decision_rule.value,
            "thresholds": orjson.dumps(shaped.thresholds).decode(),
            "labels": orjson.dumps(list(shaped.labels)).decode(),
            "model_alias": model_alias or "",
        },
        "outputs": [
            _tensor(name, col, shaped.labels, shaped.task) for name, col in shaped.columns.items()
        ],
    }
    if request_id is not None:
        resp["id"] = request_id
    return resp


def output_specs(task: Task, labels: tuple[str, ...], names: list[str]) -> list[TensorSpec]:
    """Metadata of the output tensors a model can give."""
    k = len(labels) or -1
    shapes = {
        "label": ("BYTES", (-1,)),
        "score": ("FP64", (-1,)),
        "probabilities": ("FP64", (-1, k)),
        "logits": ("FP64", (-1, k)),
        "decision_function": ("FP64", (-1, k) if k > 2 else (-1,)),
        "labels": ("BOOL", (-1, k)),
        "prediction": ("FP64", (-1,)),
        "std": ("FP64", (-1,)),
        "lower": ("FP64", (-1,)),
        "upper": ("FP64", (-1,)),
        "generated_text": ("BYTES", (-1, -1)),
        "sequence_score": ("FP64", (-1, -1)),
        "finish_reason": ("BYTES", (-1, -1)),
        "token_logprobs": ("BYTES", (-1, -1)),
    }
    return [TensorSpec(name=n, datatype=shapes[n][0], shape=shapes[n][1]) for n in names]
