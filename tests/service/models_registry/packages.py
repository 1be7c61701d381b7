"""The model registry tests' shared parts: small trained models, package archives, and
calls to the service held to the OpenAPI document."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path
from typing import Any

import numpy as np
from mlfactory.model_api import Model, ModelRepository

from ..test_openapi import check_response

LIMIT = 1 << 20


def regression_model() -> tuple[Model, np.ndarray]:
    from sklearn.linear_model import LinearRegression

    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1
    return Model(LinearRegression().fit(X, y), task="regression", name="prices"), X


def multilabel_model() -> tuple[Model, np.ndarray]:
    from sklearn.datasets import make_multilabel_classification
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    X, Y = make_multilabel_classification(n_samples=60, n_features=4, n_classes=3, random_state=0)
    clf = OneVsRestClassifier(LogisticRegression(max_iter=500)).fit(X, Y)
    return Model(clf, task="multi-label", name="tags", labels=["a", "b", "c"]), X


async def call(svc, method: str, template: str, path: str, **kw: Any) -> tuple[int, Any]:
    code, body, headers = await svc.call(method, path, **kw)
    check_response(method, template, code, headers, body)
    return code, body


def tar_of(files: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tf.addfile(info)
    return buf.getvalue()


def package_files(model: Model, tmp: Path) -> dict[str, bytes]:
    repo = ModelRepository(tmp / "scratch")
    v = repo.publish(model, created_by="whoever")
    folder = repo.root / model.name / str(v)
    return {p.name: p.read_bytes() for p in folder.iterdir()}
