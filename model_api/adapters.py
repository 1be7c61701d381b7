"""Adapters: run one framework's model once and return a ``RawOutput``.

Framework packages are optional: nothing here imports scikit-learn, XGBoost, LightGBM, PyTorch
or pandas at module import. Estimators are duck-typed (``predict_proba``/``decision_function``/
``predict``), which covers scikit-learn and the scikit-learn APIs of XGBoost, LightGBM and
CatBoost; PyTorch modules are recognised by their class hierarchy and torch is imported only
when one is wrapped or loaded.

Each adapter makes exactly one model call for what a task needs by default. Outputs that need
a different method of the model (``decision_function`` next to ``predict_proba``, the model's
own ``predict`` next to probabilities) cost one more call each and are only made on request;
``RawOutput.calls`` counts them.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Collection
from importlib import metadata
from typing import Any

import numpy as np

from .errors import ModelFailure
from .outputs import Generation, RawOutput
from .tasks import Task

# what an adapter can be asked for (subset of RawOutput's fields)
PROBABILITIES = "probabilities"
LOGITS = "logits"
DECISION = "decision_function"
PREDICTED = "predicted"
STD = "std"
GENERATIONS = "generations"

_DIST_NAMES = {"sklearn": "scikit-learn", "torch": "torch", "xgboost": "xgboost"}


def framework_of(obj: Any) -> tuple[str, str]:
    """(distribution name, installed version) of the package that defines ``obj``'s class."""
    root = type(obj).__module__.split(".")[0]
    dist = _DIST_NAMES.get(root, root)
    version = getattr(sys.modules.get(root), "__version__", None)
    if version is None:
        try:
            version = metadata.version(dist)
        except metadata.PackageNotFoundError:
            version = ""
    return dist, str(version)


def _is_torch_module(obj: Any) -> bool:
    # no torch import: look for torch.nn.Module in the class hierarchy by name
    return any(
        c.__module__ == "torch.nn.modules.module" and c.__name__ == "Module"
        for c in type(obj).__mro__
    )


class Adapter:
    """Base: one forward pass per request for the task's default outputs."""

    name = "base"

    def __init__(self, model: Any, task: Task) -> None:
        self.model = model
        self.task = task

    def capabilities(self) -> frozenset[str]:
        raise NotImplementedError

    def classes(self) -> list[Any] | None:
        """The model's own class values, in probability-column order, when it declares them."""
        classes = getattr(self.model, "classes_", None)
        if classes is None or self.task is not Task.CLASSIFICATION:
            return None
        return np.asarray(classes).tolist()

    def framework(self) -> tuple[str, str]:
        return framework_of(self.model)

    def forward(self, x: Any, needs: Collection[str], params: dict[str, Any]) -> RawOutput:
        raise NotImplementedError


def _maybe_dataframe(x: Any) -> Any:
    """Non-tabular inputs reach estimators as a DataFrame when pandas is there (pipelines with
    column transformers expect one), else as the dict of columns."""
    if isinstance(x, dict):
        try:
            import pandas as pd
        except ImportError:
            return x
        return pd.DataFrame(x)
    return x


def frame_columns(
    adapter: Adapter, schema_names: tuple[str, ...]
) -> tuple[tuple[str, ...], list[int] | None] | None:
    """The estimator's fit-time column names and where each sits in schema order, when it was
    fitted on a DataFrame whose columns are the schema's; None otherwise (or without pandas)."""
    if not isinstance(adapter, EstimatorAdapter):
        return None
    names = getattr(adapter.model, "feature_names_in_", None)
    if names is None:
        return None
    names = tuple(str(n) for n in names)
    if sorted(names) != sorted(schema_names):
        return None  # declared under other names: the model keeps getting what it got before
    try:
        import pandas  # noqa: F401
    except ImportError:
        return None
    order = [schema_names.index(n) for n in names]
    return names, None if order == list(range(len(names))) else order


def named_frame(x: Any, names: tuple[str, ...], order: list[int] | None) -> Any:
    """Validated model input (a float matrix in schema order, or a dict of columns) -> a
    DataFrame with the estimator's fit-time column names in fit order."""
    import pandas as pd

    if isinstance(x, dict):
        return pd.DataFrame({n: x[n] for n in names})
    return pd.DataFrame(x if order is None else x[:, order], columns=list(names), copy=False)


def _positive_proba(parts: list[Any], estimators: list[Any] | None) -> np.ndarray:
    """Multi-output ``predict_proba`` (a list of [n, 2] arrays) -> [n, L] P(label on)."""
    cols = []
    for j, p in enumerate(parts):
        p = np.asarray(p, dtype=np.float64)
        classes = None
        if estimators is not None and j < len(estimators):
            classes = getattr(estimators[j], "classes_", None)
        if classes is not None and len(classes) == 1:
            # the label was constant in training: all-on or all-off
            cols.append(np.full(p.shape[0], float(bool(classes[0]))))
        else:
            cols.append(p[:, -1])
    return np.column_stack(cols)


class EstimatorAdapter(Adapter):
    """scikit-learn and every estimator with its API (XGBoost, LightGBM, CatBoost)."""

    name = "estimator"

    def __init__(self, model: Any, task: Task) -> None:
        super().__init__(model, task)
        if task is Task.SEQ2SEQ:
            raise TypeError("estimators cannot generate text; wrap a callable for seq2seq")
        self._has_std = False
        predict = getattr(model, "predict", None)
        if predict is not None and task is Task.REGRESSION:
            try:
                self._has_std = "return_std" in inspect.signature(predict).parameters
            except (TypeError, ValueError):
                self._has_std = False

    def capabilities(self) -> frozenset[str]:
        caps = set()
        m = self.model
        if hasattr(m, "predict"):
            caps.add(PREDICTED)
        if self.task in (Task.CLASSIFICATION, Task.MULTI_LABEL) and hasattr(m, "predict_proba"):
            caps.add(PROBABILITIES)
        if self.task is Task.CLASSIFICATION and hasattr(m, "decision_function"):
            caps.add(DECISION)
        if self._has_std:
            caps.add(STD)
        return frozenset(caps)

    def forward(self, x: Any, needs: Collection[str], params: dict[str, Any]) -> RawOutput:
        m = self.model
        x = _maybe_dataframe(x)
        out = RawOutput()
        if self.task is Task.REGRESSION:
            if STD in needs and self._has_std:
                mean, std = m.predict(x, return_std=True)
                out.predicted, out.std = np.asarray(mean), np.asarray(std)
            else:
                out.predicted = np.asarray(m.predict(x))
            out.calls = 1
            return out
        calls = 0
        if PROBABILITIES in needs:
            p = m.predict_proba(x)
            calls += 1
            if isinstance(p, list):
                p = _positive_proba(p, getattr(m, "estimators_", None))
            out.probabilities = p
        if DECISION in needs:
            out.decision_function = np.asarray(m.decision_function(x), dtype=np.float64)
            calls += 1
        if PREDICTED in needs:
            out.predicted = np.asarray(m.predict(x))
            calls += 1
        out.calls = calls
        return out


class TorchAdapter(Adapter):
    """A ``torch.nn.Module`` whose forward takes a float32 batch and returns logits (or, for
    regression, values). Outputs with a ``.logits`` attribute (Hugging Face) are accepted."""

    name = "torch"

    def __init__(self, model: Any, task: Task, device: str = "cpu") -> None:
        super().__init__(model, task)
        if task is Task.SEQ2SEQ:
            raise TypeError("wrap a generation callable for seq2seq torch models")
        try:
            import torch
        except ImportError as e:  # pragma: no cover - depends on the environment
            raise ImportError(
                "this model is a PyTorch module but torch is not installed: pip install torch"
            ) from e
        self._torch = torch
        self.device = device
        model.eval()  # dropout and batch-norm in inference mode

    def capabilities(self) -> frozenset[str]:
        if self.task is Task.REGRESSION:
            return frozenset({PREDICTED})
        return frozenset({LOGITS, PROBABILITIES})

    def framework(self) -> tuple[str, str]:
        return "torch", str(self._torch.__version__)

    def forward(self, x: Any, needs: Collection[str], params: dict[str, Any]) -> RawOutput:
        torch = self._torch
        t = torch.as_tensor(np.asarray(x, dtype=np.float32), device=self.device)
        with torch.inference_mode():
            y = self.model(t)
        y = getattr(y, "logits", y)
        if isinstance(y, (tuple, list)):
            y = y[0]
        arr = y.detach().to("cpu").numpy().astype(np.float64, copy=False)
        if self.task is Task.REGRESSION:
            return RawOutput(predicted=arr, calls=1)
        return RawOutput(logits=arr, calls=1)


class CallableAdapter(Adapter):
    """A plain Python callable.

    Classification / multi-label: ``fn(x)`` returns an array read as ``returns``
    ("probabilities", "logits" or "labels"), or a dict with RawOutput field names.
    Regression: an array of predictions, or a dict with prediction/std/lower/upper.
    Seq2seq: ``fn(texts, num_return_sequences=, max_new_tokens=, return_logprobs=)`` returns,
    per input, a list of candidates (``Generation``, dict with text/score/finish_reason/
    token_logprobs, or plain strings).
    """

    name = "callable"

    def __init__(self, model: Callable[..., Any], task: Task, returns: str | None = None) -> None:
        super().__init__(model, task)
        if not callable(model):
            raise TypeError(f"{type(model).__name__} is not callable")
        default = {
            Task.CLASSIFICATION: "probabilities",
            Task.MULTI_LABEL: "probabilities",
            Task.REGRESSION: "prediction",
            Task.SEQ2SEQ: "generations",
        }[task]
        self.returns = returns or default
        allowed = {"probabilities", "logits", "labels", "prediction", "generations", "dict"}
        if self.returns not in allowed:
            raise ValueError(f"returns must be one of {sorted(allowed)}, got {self.returns!r}")

    def capabilities(self) -> frozenset[str]:
        if self.task is Task.SEQ2SEQ:
            return frozenset({GENERATIONS})
        if self.task is Task.REGRESSION:
            return frozenset({PREDICTED, STD}) if self.returns == "dict" else frozenset({PREDICTED})
        return frozenset(
            {
                "probabilities": {PROBABILITIES},
                "logits": {LOGITS, PROBABILITIES},
                "labels": {PREDICTED},
                "dict": {PROBABILITIES, LOGITS, PREDICTED, DECISION},
            }[self.returns]
        )

    def framework(self) -> tuple[str, str]:
        return "python", "{}.{}.{}".format(*sys.version_info[:3])

    def classes(self) -> list[Any] | None:
        return None

    def forward(self, x: Any, needs: Collection[str], params: dict[str, Any]) -> RawOutput:
        if self.task is Task.SEQ2SEQ:
            texts = x["text"].tolist() if isinstance(x, dict) else list(x)
            result = self.model(texts, **params)
            return RawOutput(generations=[_generations(row) for row in result], calls=1)
        result = self.model(x)
        if isinstance(result, dict):
            out = RawOutput(calls=1)
            for key, value in result.items():
                target = "predicted" if key in ("prediction", "labels") else key
                if target not in RawOutput.__slots__ or target in ("calls", "generations"):
                    raise ModelFailure(f"the callable returned an unknown output {key!r}")
                setattr(out, target, np.asarray(value))
            return out
        arr = np.asarray(result)
        field = {
            "probabilities": "probabilities",
            "logits": "logits",
            "labels": "predicted",
            "prediction": "predicted",
        }[self.returns]
        out = RawOutput(calls=1)
        setattr(out, field, arr)
        return out


def _generations(row: Any) -> list[Generation]:
    gens = []
    for g in row:
        if isinstance(g, Generation):
            gens.append(g)
        elif isinstance(g, str):
            gens.append(Generation(text=g))
        elif isinstance(g, dict):
            gens.append(
                Generation(
                    text=str(g["text"]),
                    score=None if g.get("score") is None else float(g["score"]),
                    finish_reason=str(g.get("finish_reason", "stop")),
                    token_logprobs=g.get("token_logprobs"),
                )
            )
        else:
            raise ModelFailure(f"the generator returned a {type(g).__name__} candidate")
    return gens


ADAPTERS: dict[str, type[Adapter]] = {
    EstimatorAdapter.name: EstimatorAdapter,
    TorchAdapter.name: TorchAdapter,
    CallableAdapter.name: CallableAdapter,
}


def choose_adapter(model: Any, task: Task, **options: Any) -> Adapter:
    """Pick the adapter for ``model``: torch module, estimator, or callable (in that order)."""
    if _is_torch_module(model):
        return TorchAdapter(model, task, **options)
    if task is not Task.SEQ2SEQ and (hasattr(model, "predict_proba") or hasattr(model, "predict")):
        return EstimatorAdapter(model, task)
    if callable(model):
        return CallableAdapter(model, task, **options)
    raise TypeError(
        f"cannot wrap a {type(model).__name__}: give an estimator (predict/predict_proba), "
        "a torch.nn.Module or a callable"
    )
