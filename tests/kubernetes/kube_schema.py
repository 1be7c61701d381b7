"""Kubernetes OpenAPI schema validation with the schemas kubernetes-validate ships, each
compiled once per (version, kind) instead of once per call.

``kubernetes_validate.validate`` reads and compiles the schema files at every call (~25 ms
a pod here); the builder's benchmark validates thousands. ``validate`` uses the same files
(strict: unknown fields are errors) compiled to Python by fastjsonschema (~0.35 ms a pod);
``errors`` uses jsonschema, kubernetes-validate's own engine, and the tests check that the
two agree on every manifest, valid or broken.
"""

from __future__ import annotations

import json
import re
from functools import cache
from typing import Any

import fastjsonschema
import jsonschema
import kubernetes_validate
from kubernetes_validate import utils as kv_utils
from referencing import Registry, Resource

# The Kubernetes versions mlfactory supports: the oldest still in upstream support when this
# was written, and the newest minor that kubernetes-validate 1.37 ships with GKE/EKS/AKS.
SUPPORTED_VERSIONS = ("1.31", "1.34")


_FORMATS = {f: (lambda _: True) for f in ("double", "int32", "int64", "byte", "date-time")}


def _files(version: str, kind: str, api_version: str) -> tuple[dict, dict]:
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    folder = f"kubernetes-json-schema/v{version}.0-local-strict"
    schema = kv_utils.schema_contents(f"{folder}/{kind.lower()}-{api}.json", version)
    definitions = kv_utils.schema_contents(f"{folder}/_definitions.json", version)
    return schema, definitions


@cache
def _compiled(version: str, kind: str, api_version: str) -> Any:
    schema, definitions = _files(version, kind, api_version)
    # one self-contained document: fastjsonschema resolves local references only
    text = json.dumps({**schema, "definitions": definitions["$defs"]})
    text = text.replace('"/api/_definitions.json#/$defs/', '"#/definitions/')
    text = text.replace('"#/$defs/', '"#/definitions/')
    inlined = json.loads(text)
    inlined.pop("$schema", None)
    inlined.pop("$id", None)
    defs = inlined["definitions"]
    for name, schema in defs.items():
        defs[name] = _one_type(schema)
    return fastjsonschema.compile(inlined, formats=_FORMATS)


def _one_type(schema: dict) -> dict:
    """``{"oneOf": [{"type": [a, "null"]}, {"type": [b, "null"]}]}`` (a quantity, an
    int-or-string: every resource and port) as the equivalent ``{"type": [a, b]}``.

    The same rule: a value of type a or b matches exactly one branch, null matches both and
    so neither form. fastjsonschema runs a oneOf by raising and catching an exception per
    failing branch, which was a tenth of a pod's validation.
    """
    branches = schema.get("oneOf") if set(schema) == {"oneOf"} else None
    if not isinstance(branches, list) or len(branches) != 2:
        return schema
    types = []
    for branch in branches:
        t = branch.get("type") if set(branch) == {"type"} else None
        if not (isinstance(t, list) and len(t) == 2 and t[1] == "null" and t[0] != "null"):
            return schema
        types.append(t[0])
    # disjoint only when neither is a number type containing the other
    if types[0] == types[1] or {"number", "integer"} <= set(types):
        return schema
    return {"type": types}


@cache
def _validator(version: str, kind: str, api_version: str) -> jsonschema.Validator:
    schema, definitions = _files(version, kind, api_version)
    registry = Resource.from_contents(definitions) @ (Resource.from_contents(schema) @ Registry())
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


class Invalid(ValueError):
    pass


def validate(manifest: dict[str, Any], version: str) -> None:
    """Raise ``Invalid`` when ``manifest`` is not a valid object of its kind in Kubernetes
    ``version`` (strict: unknown fields are errors)."""
    try:
        _compiled(version, manifest["kind"], manifest["apiVersion"])(manifest)
    except fastjsonschema.JsonSchemaValueException as e:
        raise Invalid(f"{manifest['kind']} for Kubernetes {version}: {e.message}") from None


def errors(manifest: dict[str, Any], version: str) -> list[str]:
    """Every schema error of ``manifest``, as ``path: message`` lines."""
    v = _validator(version, manifest["kind"], manifest["apiVersion"])
    return [
        f"{'.'.join(str(p) for p in e.absolute_path)}: {e.message}" for e in v.iter_errors(manifest)
    ]


def validate_upstream(manifest: dict[str, Any], version: str) -> None:
    """kubernetes-validate's own entry point (slow; the tests check ours agrees with it)."""
    kubernetes_validate.validate(json.loads(json.dumps(manifest)), version, strict=True)
