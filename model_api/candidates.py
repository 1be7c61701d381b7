"""What the "Publish model" dialog asks the kernel: which of its variables are models and
which can serve as an input example (``listing``), what a choice would publish (``preview``:
the schema and a test prediction), and publishing it (``publish_choice``).

The describing functions are pure (objects in, JSON-able dicts out). The JupyterLab dialog
calls the ``*_answer`` functions as ``user_expressions`` of a silent execute request, so
nothing lands in the notebook, its execution count or the kernel's history; they never
raise: an answer is ``{"ok": true, ...}`` or ``{"ok": false, "error": <a plain message>}``.
"""

from __future__ import annotations

import json
import os
import re
import sys
import types
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from . import adapters as ad
from .display import table
from .errors import ModelAPIError
from .wrapper import NAME_PATTERN, Model

#: how many variables of each kind the dialog lists (a kernel can hold thousands)
MAX_ITEMS = 200
#: columns named per example; wider frames list the first ones and say how many there are
MAX_COLUMNS = 50
#: rows of the example the test prediction runs on, and the preview shows
PREVIEW_ROWS = 5
#: saved model files the dialog offers, found under the kernel's working folder
MODEL_FILE_SUFFIXES = (".joblib", ".pkl", ".pickle")
MAX_FILE_DEPTH = 3
#: names IPython puts in every namespace
_IPYTHON_NAMES = {"In", "Out", "exit", "quit", "get_ipython"}


class KernelAnswer(dict):
    """A dict that IPython formats as ``application/json`` (and JSON text as the fallback),
    so a ``user_expressions`` reply carries it without a Python repr to parse."""

    def _repr_json_(self) -> dict[str, Any]:
        return dict(self)

    def __repr__(self) -> str:
        return json.dumps(self, default=str)


# --- describing objects (pure) ----------------------------------------------------------------


def _is_fitted(obj: Any) -> bool:
    """scikit-learn's own test (``check_is_fitted``): fitted estimators have attributes that
    end in ``_`` (``classes_``, ``coef_``); ``__sklearn_is_fitted__`` wins where defined."""
    probe = getattr(obj, "__sklearn_is_fitted__", None)
    if callable(probe):
        try:
            return bool(probe())
        except Exception:
            return False
    return any(k.endswith("_") and not k.startswith("__") for k in vars(obj))


def _estimator_type(obj: Any) -> str | None:
    """ "classifier", "regressor" or None, from scikit-learn's tags when it is loaded (1.6+
    moved them from ``_estimator_type``), else the attribute other libraries still set."""
    base = sys.modules.get("sklearn.base")
    if base is not None and hasattr(obj, "__sklearn_tags__"):
        try:
            if base.is_classifier(obj):
                return "classifier"
            if base.is_regressor(obj):
                return "regressor"
        except (AttributeError, TypeError):  # a half-implemented estimator API
            pass
    kind = getattr(obj, "_estimator_type", None)
    return kind if kind in ("classifier", "regressor") else None


def infer_task(obj: Any) -> tuple[str | None, list[str]]:
    """(task, label names) where the object tells: a classifier with ``classes_`` is
    classification with those labels; ``classes_`` per output (a list of arrays) is
    multi-label (names unknown: one placeholder per output); a regressor is regression."""
    classes = getattr(obj, "classes_", None)
    if getattr(obj, "multilabel_", False) is True and classes is not None:
        # OneVsRestClassifier fitted on an indicator matrix: classes_ are the label columns
        return "multi-label", [f"label_{i}" for i in range(len(classes))]
    if isinstance(classes, list) and classes and all(np.ndim(c) == 1 for c in classes):
        return "multi-label", [f"label_{i}" for i in range(len(classes))]
    if classes is not None and np.ndim(classes) == 1:
        labels = [str(c) for c in np.asarray(classes).tolist()]
        if _estimator_type(obj) == "classifier" or hasattr(obj, "predict_proba"):
            if len(labels) >= 2:
                return "classification", labels
    if _estimator_type(obj) == "regressor":
        return "regression", []
    return None, []


def describe_model(name: str, obj: Any) -> dict[str, Any] | None:
    """What the dialog shows for a model-like variable, or None when it is not one: a fitted
    estimator (anything with ``predict``), a torch module, or a function defined in the
    notebook. Classes, modules and unfitted scikit-learn estimators are not models."""
    if isinstance(obj, (type, types.ModuleType)) or name.startswith("_"):
        return None
    cls = type(obj)
    if ad._is_torch_module(obj):
        kind = "torch module"
        fitted = True
    elif callable(getattr(obj, "predict", None)):
        kind = "estimator"
        fitted = _is_fitted(obj) if hasattr(obj, "__dict__") else True
        if not fitted and cls.__module__.split(".")[0] == "sklearn":
            return None  # it cannot predict yet
    elif isinstance(obj, types.FunctionType) and obj.__module__ == "__main__":
        kind = "function"
        fitted = True
    else:
        return None
    task, labels = infer_task(obj)
    framework = ad.framework_of(obj)[0] if kind != "function" else "python"
    return {
        "name": name,
        "class": cls.__name__ if kind != "function" else f"{obj.__name__}()",
        "module": cls.__module__,
        "kind": kind,
        "framework": framework,
        "task": task,
        "labels": labels,
        "n_features": _int_or_none(getattr(obj, "n_features_in_", None)),
    }


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def describe_example(name: str, obj: Any) -> dict[str, Any] | None:
    """A DataFrame or a 2-D numeric array that can be the input example, or None."""
    if name.startswith("_"):
        return None
    if hasattr(obj, "columns") and hasattr(obj, "dtypes") and hasattr(obj, "shape"):
        if len(obj.shape) != 2:
            return None
        columns = [str(c) for c in list(obj.columns)[:MAX_COLUMNS]]
        return {
            "name": name,
            "kind": "DataFrame",
            "shape": [int(obj.shape[0]), int(obj.shape[1])],
            "columns": columns,
        }
    if isinstance(obj, np.ndarray) and obj.ndim == 2 and obj.dtype.kind in "biuf":
        return {
            "name": name,
            "kind": "ndarray",
            "shape": [int(obj.shape[0]), int(obj.shape[1])],
            "columns": [],
        }
    return None


def listing(namespace: Mapping[str, Any], files: list[str] | None = None) -> dict[str, Any]:
    """The models and input examples among ``namespace``'s variables, sorted by name."""
    models: list[dict[str, Any]] = []
    examples: list[dict[str, Any]] = []
    for name in sorted(namespace):
        if name in _IPYTHON_NAMES or name.startswith("_"):
            continue
        obj = namespace[name]
        try:
            if len(models) < MAX_ITEMS and (found := describe_model(name, obj)):
                models.append(found)
            elif len(examples) < MAX_ITEMS and (found := describe_example(name, obj)):
                examples.append(found)
        except Exception:  # noqa: S112 - an object whose attributes raise is no model to publish
            continue
    return {"ok": True, "models": models, "examples": examples, "files": files or []}


def model_files(
    root: Path, depth: int = MAX_FILE_DEPTH, limit: int = MAX_ITEMS, max_dirs: int = 500
) -> list[str]:
    """Saved model files under ``root`` (relative paths), hidden folders skipped; at most
    ``max_dirs`` folders are read, so a huge workspace cannot stall the dialog."""
    found: list[str] = []
    root = root.resolve()
    for seen, (folder, dirs, names) in enumerate(os.walk(root)):
        if seen >= max_dirs:
            break
        rel = Path(folder).relative_to(root)
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d != "__pycache__")
        if len(rel.parts) >= depth:
            dirs[:] = []
        for n in sorted(names):
            if n.endswith(MODEL_FILE_SUFFIXES) and not n.startswith("."):
                found.append((rel / n).as_posix())
                if len(found) >= limit:
                    return found
    return found


# --- a choice from the dialog ------------------------------------------------------------------


class ChoiceError(ValueError):
    """A choice that cannot be published; the message is for the dialog as is."""


def _text(choice: Mapping[str, Any], key: str, limit: int = 4000) -> str:
    v = choice.get(key) or ""
    if not isinstance(v, str):
        raise ChoiceError(f"{key}: text expected")
    return v.strip()[:limit]


def load_model_file(path: str, root: Path) -> Any:
    """A model saved in the workspace (joblib or pickle), ``path`` under ``root``. Loading a
    pickle runs code from it: only the user's own kernel does this, on their own file."""
    if not path or path.startswith("/") or ".." in Path(path).parts:
        raise ChoiceError(f"model file {path!r}: give a path inside your workspace folder")
    full = (root / path).resolve()
    if not full.is_relative_to(root.resolve()) or not full.is_file():
        raise ChoiceError(f"model file {path!r} was not found in {root}")
    if full.suffix == ".joblib":
        import joblib

        return joblib.load(full)
    import pickle

    with full.open("rb") as f:
        return pickle.load(f)  # noqa: S301 - the user's own file, in the user's own kernel


def resolve_choice(
    namespace: Mapping[str, Any],
    choice: Mapping[str, Any],
    load_file: Callable[[str], Any] | None = None,
) -> tuple[Model, Any]:
    """The ``Model`` a dialog choice describes and the first rows of its input example.

    ``choice``: ``model`` (a variable name) or ``file`` (a saved model), ``name``, ``task``,
    ``labels`` (list of names; classification: in the model's class order), ``example`` (a
    variable name), ``description``.
    """
    name = _text(choice, "name", 63)
    if not re.fullmatch(NAME_PATTERN, name):
        raise ChoiceError(
            f"name {name!r}: use 1-63 lowercase letters, digits, '-' or '_', starting with a "
            "letter or digit (it becomes part of the model's URL)"
        )
    if choice.get("file"):
        if load_file is None:
            raise ChoiceError("model files cannot be loaded here")
        try:
            obj = load_file(str(choice["file"]))
        except ChoiceError:
            raise
        except Exception as e:
            raise ChoiceError(f"the model file could not be loaded: {type(e).__name__}: {e}") from e
    else:
        var = _text(choice, "model", 200)
        if var not in namespace:
            raise ChoiceError(f"model: no variable {var!r} in the kernel (run its cell first)")
        obj = namespace[var]
    example_var = _text(choice, "example", 200)
    if not example_var:
        raise ChoiceError("input example: pick a DataFrame or array the model takes")
    if example_var not in namespace:
        raise ChoiceError(f"input example: no variable {example_var!r} in the kernel")
    example = namespace[example_var]
    if describe_example(example_var, example) is None:
        raise ChoiceError(f"input example: {example_var!r} is not a DataFrame or a 2-D array")
    head = example.iloc[:PREVIEW_ROWS] if hasattr(example, "iloc") else example[:PREVIEW_ROWS]
    labels = choice.get("labels") or None
    if labels is not None and (
        not isinstance(labels, list) or not all(isinstance(x, str) and x for x in labels)
    ):
        raise ChoiceError("labels: a list of label names")
    task = _text(choice, "task", 40)
    if not task:
        raise ChoiceError("task: pick classification, regression or multi-label")
    try:
        model = Model(
            obj,
            task=task,
            name=name,
            labels=labels,
            sample=head,
            description=_text(choice, "description"),
        )
    except (ValueError, TypeError, ModelAPIError) as e:
        raise ChoiceError(str(getattr(e, "message", e))) from e
    return model, head


def preview(model: Model, head: Any) -> dict[str, Any]:
    """The schema the model will be served with and its prediction on ``head``."""
    prediction = model.predict(head)
    headers, rows = table(prediction.to_records()[:PREVIEW_ROWS], prediction.label_names)
    return {
        "ok": True,
        "name": model.name,
        "task": model.task.value,
        "labels": list(model.labels),
        "decision_rule": model.decision_rule.value,
        "inputs": [{"name": s.name, "datatype": s.datatype} for s in model.schema.inputs],
        "outputs": model.available_outputs(),
        "prediction": {"headers": headers, "rows": rows},
    }


def _failure(e: BaseException, stage: str) -> KernelAnswer:
    if isinstance(e, ChoiceError):
        return KernelAnswer(ok=False, stage=stage, error=str(e))
    if isinstance(e, ModelAPIError):
        cause = e.__cause__
        extra = f" ({type(cause).__name__}: {cause})" if cause is not None else ""
        return KernelAnswer(ok=False, stage=stage, error=f"{e.message}{extra}")
    return KernelAnswer(ok=False, stage=stage, error=f"{type(e).__name__}: {e}")


# --- what the dialog calls (user_expressions); never raise -------------------------------------


def _namespace() -> Mapping[str, Any]:
    """The notebook's variables: IPython's user namespace, else ``__main__``'s."""
    try:
        shell = sys.modules["IPython"].get_ipython()  # type: ignore[union-attr]
    except (KeyError, AttributeError):
        shell = None
    if shell is not None:
        return shell.user_ns
    return vars(sys.modules["__main__"])


def listing_answer(namespace: Mapping[str, Any] | None = None) -> KernelAnswer:
    try:
        files = model_files(Path.cwd())
    except OSError:
        files = []
    try:
        return KernelAnswer(listing(_namespace() if namespace is None else namespace, files))
    except Exception as e:
        return _failure(e, "listing")


def _cwd_loader(path: str) -> Any:
    return load_model_file(path, Path.cwd())


def preview_answer(
    choice: Mapping[str, Any], namespace: Mapping[str, Any] | None = None
) -> KernelAnswer:
    ns = _namespace() if namespace is None else namespace
    try:
        model, head = resolve_choice(ns, choice, _cwd_loader)
    except Exception as e:
        return _failure(e, "choice")
    try:
        return KernelAnswer(preview(model, head))
    except Exception as e:
        return _failure(e, "test_prediction")


def publish_answer(
    choice: Mapping[str, Any],
    namespace: Mapping[str, Any] | None = None,
    publish: Callable[..., dict[str, Any]] | None = None,
) -> KernelAnswer:
    """Publish the choice as the model's next version; ``note`` (the version note) and
    ``notebook_path``/``history_version`` (provenance) come with the choice."""
    from .publishing import publish as default_publish

    ns = _namespace() if namespace is None else namespace
    try:
        model, head = resolve_choice(ns, choice, _cwd_loader)
    except Exception as e:
        return _failure(e, "choice")
    note = _text(choice, "note", 2000)
    if note:
        model.description = f"{model.description}\n\n{note}".strip()
    try:
        answer = (publish or default_publish)(
            model,
            test_input=head,
            notebook_path=_text(choice, "notebook_path", 1024) or None,
            history_version=_text(choice, "history_version", 64) or None,
        )
    except Exception as e:
        return _failure(e, "publish")
    return KernelAnswer(ok=True, published=answer)


__all__ = [
    "ChoiceError",
    "KernelAnswer",
    "describe_example",
    "describe_model",
    "infer_task",
    "listing",
    "listing_answer",
    "model_files",
    "preview",
    "preview_answer",
    "publish_answer",
    "resolve_choice",
]
