"""The common prediction API: task-typed outputs, raw values, schemas, serving, client SDK.

Importable without Jupyter installed: at import time it needs only numpy, pyyaml, pydantic,
tornado, orjson and the standard library; scikit-learn, torch, pandas and jupyterhub are
imported only by the adapter, method or mode that uses them.

    from mlfactory.model_api import Model, ModelRepository, Client
"""

from __future__ import annotations

from .errors import (
    BadRequest,
    Forbidden,
    InvalidInput,
    ModelAPIError,
    ModelFailure,
    ModelUnavailable,
    NotFound,
    NotReady,
    Overloaded,
    PackageError,
    PackageVersionError,
    PredictionTimeout,
    PublishRefused,
    Unauthorized,
    UnsupportedMediaType,
)
from .outputs import Generation
from .package import ModelRepository, load_package
from .results import Prediction
from .schemas import ModelSchema, TensorSpec
from .tasks import API_VERSION, OUTPUT_SCHEMA_VERSION, DecisionRule, Task
from .wrapper import Model

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


def __getattr__(name: str):  # the SDK pulls in http machinery: load it when asked for
    if name == "publish":  # urllib and tarfile only when publishing
        from .publishing import publish

        return publish
    if name in ("Client", "AsyncClient"):
        from . import client

        return getattr(client, name)
    raise AttributeError(f"module 'mlfactory.model_api' has no attribute {name!r}")
