"""Wrap a trained model in the platform's common prediction API and publish it as a package:
a numbered, immutable version in a model repository, ready for the model server."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from mlfactory.components.placeholders import expects
from mlfactory.components.results import Result, Table, listing
from mlfactory.model_api import Model, ModelRepository
from mlfactory.model_api.schemas import request_json_schema


def _default_task(model: Any) -> str:
    # A classifier has classes_ and (usually) predict_proba; everything else predicts values.
    final = model.steps[-1][1] if hasattr(model, "steps") else model
    if getattr(final, "_estimator_type", None) == "classifier" or hasattr(final, "classes_"):
        return "classification"
    return "regression"


def _head(sample: Any, n: int) -> Any:
    if hasattr(sample, "iloc"):
        return sample.iloc[:n]
    if isinstance(sample, dict):
        return {k: np.asarray(v)[:n] for k, v in sample.items()}
    return np.asarray(sample)[:n]


def _same(a: Any, b: Any, task: str) -> bool:
    if task == "regression":
        return np.allclose(a.predictions, b.predictions, equal_nan=True)
    return a.labels == b.labels


def _check_round_trip(wrapped: Model, rows: Any) -> None:
    """Publish to a scratch repository, load it back and compare: versions are immutable, so
    a package that does not reproduce the predictions must never reach the real one."""
    before = wrapped.predict(rows)
    with tempfile.TemporaryDirectory(prefix="mlfactory-package-check-") as scratch:
        ModelRepository(scratch).publish(wrapped, created_by="round-trip-check")
        after = ModelRepository(scratch).load(wrapped.name).predict(rows)
    wrapped.version = None  # publish() numbered the wrapper; the real publish renumbers it
    if not _same(before, after, wrapped.task.value):
        raise RuntimeError(
            f"model {wrapped.name!r}: the saved package does not reproduce the in-memory "
            "predictions after loading; nothing was published. Check that every class and "
            "function the model uses is importable by name (no lambdas or notebook-local "
            "classes)"
        )


@expects(
    model="your trained model (e.g. result.model from train_classifier_cv)",
    name='a model name of lowercase letters, digits, - and _ (e.g. "churn-model")',
    repository='the model repository folder the server reads (e.g. "models")',
)
def wrap_model_api(
    model: Any,
    name: str,
    repository: str | Path,
    task: str | None = None,
    labels: list[str] | None = None,
    input_schema: list[Any] | None = None,
    sample: Any = None,
    threshold: float | None = None,
    decision_rule: str | None = None,
    description: str = "",
    metrics: dict[str, float] | None = None,
    alias: str | None = None,
    source_notebook: str | None = None,
    created_by: str | None = None,
) -> dict[str, Any]:
    """Wrap ``model`` with ``mlfactory.model_api.Model`` and publish it to ``repository``.

    ``task`` is ``classification``, ``regression`` or ``multi-label`` (classification
    when the model has ``classes_``, else regression). ``labels`` names the classes in the
    model's ``classes_`` order (their string form when None). The input schema is
    ``input_schema`` (names, or dicts with ``name``/``datatype``), else read from
    ``sample`` (a DataFrame gives names and types), else from the model's
    ``feature_names_in_``/``n_features_in_``. ``threshold`` makes a binary classifier decide
    by P(positive) >= threshold. ``metrics`` (e.g. test AUC) go on the model card.

    The package is written to ``<repository>/<name>/<version>/`` (``model.yaml`` card plus
    the joblib artefact with its SHA-256), version numbers counting up from 1, and
    ``alias`` (e.g. ``staging``) is pointed at it. With a ``sample``, its first rows are
    predicted, the package is written to a scratch repository and loaded back, and a
    difference raises before anything is published, so a version that would not
    reproduce the notebook's predictions never reaches the repository. The artefact is a
    pickle: only serve packages from people you trust.

    Returns ``{"path", "name", "version", "signature" (task, inputs, outputs, labels,
    decision_rule, threshold, request_schema), "model" (the wrapper)}``.
    """
    if not hasattr(model, "predict") and not callable(model):
        raise TypeError(f"model must have predict or be callable, got {type(model).__name__}")
    task = task or _default_task(model)
    wrapped = Model(
        model,
        task=task,
        name=name,
        labels=labels,
        input_schema=input_schema,
        sample=sample,
        threshold=threshold,
        decision_rule=decision_rule,
        description=description,
        metrics=metrics,
    )
    if sample is not None:
        _check_round_trip(wrapped, _head(sample, 5))
    repo = ModelRepository(repository)
    version = repo.publish(
        wrapped, alias=alias, source_notebook=source_notebook, created_by=created_by
    )
    path = repo.root / name / str(version)
    signature = {
        "task": wrapped.task.value,
        "inputs": [spec.model_dump() for spec in wrapped.schema.inputs],
        "outputs": wrapped.available_outputs(),
        "labels": list(wrapped.labels),
        "decision_rule": wrapped.decision_rule.value,
        "threshold": wrapped.threshold,
        "request_schema": request_json_schema(wrapped.schema, wrapped.task),
    }
    out = {
        "path": str(path),
        "name": name,
        "version": version,
        "signature": signature,
        "model": wrapped,
    }
    inputs = signature["inputs"]
    return Result(
        out,
        title=f"wrap_model_api: {name} {version}",
        summary=[
            f"Published {name} version {version} to {path}",
            f"{signature['task']}: outputs {listing(signature['outputs'])}"
            + (f"; labels {listing(signature['labels'])}" if signature["labels"] else ""),
        ],
        tables=[
            Table(
                "Inputs",
                ["datatype", "nullable", "description"],
                [
                    [i["datatype"], "yes" if i["nullable"] else "no", i["description"]]
                    for i in inputs
                ],
                index=[i["name"] for i in inputs],
                corner="input",
            )
        ]
        if inputs
        else [],
    )
