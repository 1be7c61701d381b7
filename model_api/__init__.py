"""The common prediction API: task-typed outputs, raw values, schemas, serving, client SDK.

Importable without Jupyter installed: it needs only numpy, pyyaml, pydantic, tornado, orjson
and the standard library; scikit-learn, torch, pandas and jupyterhub are imported only by
the adapter, method or mode that uses them. The package's names load at first use.

    from mlfactory.model_api import Model, ModelRepository, Client
"""

from __future__ import annotations

from typing import Any

# name -> the module that defines it. Loaded at first use (PEP 562): the hub and the
# platform service import small parts of this package (``auth``, ``package``'s patterns)
# and must not pay for numpy and the wrapper (~10 MiB held for the process's life).
_EXPORTS = {
    **dict.fromkeys(
        (
            "BadRequest",
            "Forbidden",
            "InvalidInput",
            "ModelAPIError",
            "ModelFailure",
            "ModelUnavailable",
            "NotFound",
            "NotReady",
            "Overloaded",
            "PackageError",
            "PackageVersionError",
            "PredictionTimeout",
            "PublishRefused",
            "Unauthorized",
            "UnsupportedMediaType",
        ),
        "errors",
    ),
    "Generation": "outputs",
    "ModelRepository": "package",
    "load_package": "package",
    "Prediction": "results",
    "ModelSchema": "schemas",
    "TensorSpec": "schemas",
    "API_VERSION": "tasks",
    "OUTPUT_SCHEMA_VERSION": "tasks",
    "DecisionRule": "tasks",
    "Task": "tasks",
    "Model": "wrapper",
    "publish": "publishing",  # urllib and tarfile only when publishing
    "Client": "client",  # the SDK's http machinery only when calling
    "AsyncClient": "client",
}

__all__ = [
    "API_VERSION",
    "OUTPUT_SCHEMA_VERSION",
    "AsyncClient",
    "BadRequest",
    "Client",
    "DecisionRule",
    "Forbidden",
    "Generation",
    "InvalidInput",
    "Model",
    "ModelAPIError",
    "ModelFailure",
    "ModelRepository",
    "ModelSchema",
    "ModelUnavailable",
    "NotFound",
    "NotReady",
    "Overloaded",
    "PackageError",
    "PackageVersionError",
    "Prediction",
    "PredictionTimeout",
    "PublishRefused",
    "Task",
    "TensorSpec",
    "Unauthorized",
    "UnsupportedMediaType",
    "load_package",
    "publish",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mlfactory.model_api' has no attribute {name!r}")
    from importlib import import_module

    return getattr(import_module(f".{module}", __name__), name)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
