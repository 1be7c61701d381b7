"""The model wrapper data scientists use: declare the task, the labels and the model.

    model = Model(clf, task="classification", name="iris", labels=["setosa", ...])
    model.predict(X).labels

It owns the decisions that do not depend on I/O: which adapter, which decision rule and
thresholds, the input schema, which model calls a request needs. ``run`` is the one path every
prediction takes, in-process and in the server.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from . import adapters as ad
from .errors import InvalidInput, ModelAPIError, ModelFailure
from .outputs import (
    RawOutput,
    Shaped,
    check_outputs,
    select,
    shape_classification,
    shape_multilabel,
    shape_regression,
    shape_seq2seq,
)
from .results import Prediction
from .schemas import ModelSchema, TensorSpec, array_to_input, infer_input_schema
from .specs import NAME_PATTERN
from .tasks import DecisionRule, Task

# seq2seq request parameters and their limits
_SEQ2SEQ_PARAMS = {"num_return_sequences": (int, 1, 16), "max_new_tokens": (int, 1, 4096)}


class Model:
    """A model with its task, labels, decision rule and schema.

    ``labels``: class names (classification, in the model's class order) or label names
    (multi-label). ``decision_rule``: argmax (default with probabilities), threshold (binary,
    with ``threshold``), model_predict (the model's own predict decides), per_label_threshold
    (multi-label default, ``thresholds`` per label or one for all; 0.5 by default).
    """

    def __init__(
        self,
        model: Any,
        *,
        task: Task | str,
        name: str,
        labels: Sequence[str] | None = None,
        version: int | str | None = None,
        input_schema: Sequence[TensorSpec | dict[str, Any] | str] | None = None,
        sample: Any = None,
        decision_rule: DecisionRule | str | None = None,
        threshold: float | None = None,
        thresholds: Sequence[float] | float | None = None,
        interval: float = 0.95,
        adapter: ad.Adapter | str | None = None,
        returns: str | None = None,
        description: str = "",
        metrics: dict[str, float] | None = None,
    ) -> None:
        if not re.fullmatch(NAME_PATTERN, name):
            raise ValueError(
                f"model name {name!r}: use 1-63 lowercase letters, digits, '-' or '_' "
                "(it becomes a URL segment and a JupyterHub scope)"
            )
        self.name = name
        if task not in set(Task):
            raise ValueError(f"task {task!r}: use one of {', '.join(t.value for t in Task)}")
        self.task = Task(task)
        self.version = None if version is None else str(version)
        self.description = description
        self.metrics = dict(metrics or {})
        self.interval = float(interval)
        options = {"returns": returns} if returns else {}
        if isinstance(adapter, ad.Adapter):
            self.adapter = adapter
        elif isinstance(adapter, str):
            self.adapter = ad.ADAPTERS[adapter](model, self.task, **options)
        else:
            self.adapter = ad.choose_adapter(model, self.task, **options)
        self.model = model
        caps = self.adapter.capabilities()
        self._caps = caps
        self._init_labels(labels)
        self._init_rule(decision_rule, threshold, thresholds, caps)
        self.schema = ModelSchema(inputs=self._input_specs(input_schema, sample))
        self._frame_columns = ad.frame_columns(self.adapter, self.schema.input_names)
        self._needs_cache: dict[tuple[str, ...] | None, frozenset[str]] = {}

    # --- declaration ------------------------------------------------------------------------

    def _init_labels(self, labels: Sequence[str] | None) -> None:
        classes = self.adapter.classes()
        if self.task is Task.CLASSIFICATION:
            if labels is None and classes is None:
                raise ValueError("classification needs labels=[...] (the model has no classes_)")
            if labels is None:
                labels = [str(c) for c in classes]  # type: ignore[union-attr]
            if classes is None:
                classes = list(range(len(labels)))
            if len(classes) != len(labels):
                raise ValueError(
                    f"{len(labels)} labels for a model with {len(classes)} classes {classes}"
                )
            if len(labels) < 2:
                raise ValueError("classification needs at least two labels")
        elif self.task is Task.MULTI_LABEL:
            if not labels:
                raise ValueError("multi-label models need labels=[...] in output column order")
            classes = list(range(len(labels)))
        else:
            labels, classes = (), []
        self.labels: tuple[str, ...] = tuple(str(label) for label in labels)
        if len(set(self.labels)) != len(self.labels):
            raise ValueError(f"labels repeat: {list(self.labels)}")
        self.classes: list[Any] = list(classes)
        index = {c: i for i, c in enumerate(self.classes)}
        # a callable that returns label names decides by name as well
        for i, label in enumerate(self.labels):
            index.setdefault(label, i)
        self.class_index = index

    def _init_rule(
        self,
        rule: DecisionRule | str | None,
        threshold: float | None,
        thresholds: Sequence[float] | float | None,
        caps: frozenset[str],
    ) -> None:
        scores = caps & {ad.PROBABILITIES, ad.LOGITS}
        self.threshold: float | None = None
        self.thresholds: tuple[float, ...] | None = None
        if self.task is Task.CLASSIFICATION:
            if rule is None:
                if threshold is not None:
                    rule = DecisionRule.THRESHOLD
                elif scores or ad.DECISION in caps:
                    rule = DecisionRule.ARGMAX
                else:
                    rule = DecisionRule.MODEL_PREDICT
            rule = DecisionRule(rule)
            if rule is DecisionRule.THRESHOLD:
                if len(self.labels) != 2 or not scores:
                    raise ValueError("the threshold rule needs a binary model with probabilities")
                self.threshold = 0.5 if threshold is None else _unit(threshold, "threshold")
            elif rule is DecisionRule.ARGMAX and not (scores or ad.DECISION in caps):
                raise ValueError("argmax needs a model with probabilities or a decision function")
        elif self.task is Task.MULTI_LABEL:
            if rule is None:
                rule = DecisionRule.PER_LABEL_THRESHOLD if scores else DecisionRule.MODEL_PREDICT
            rule = DecisionRule(rule)
            if rule is DecisionRule.PER_LABEL_THRESHOLD:
                if not scores:
                    raise ValueError("per-label thresholds need per-label probabilities")
                t = 0.5 if thresholds is None else thresholds
                if isinstance(t, (int, float)):
                    t = [float(t)] * len(self.labels)
                if len(t) != len(self.labels):
                    raise ValueError(f"{len(t)} thresholds for {len(self.labels)} labels")
                self.thresholds = tuple(_unit(v, "thresholds") for v in t)
        else:
            rule = DecisionRule(rule or DecisionRule.MODEL_PREDICT)
            if rule is not DecisionRule.MODEL_PREDICT:
                raise ValueError(f"{self.task} models use the model_predict rule")
        allowed = {
            Task.CLASSIFICATION: {
                DecisionRule.ARGMAX,
                DecisionRule.THRESHOLD,
                DecisionRule.MODEL_PREDICT,
            },
            Task.MULTI_LABEL: {DecisionRule.PER_LABEL_THRESHOLD, DecisionRule.MODEL_PREDICT},
        }.get(self.task, {DecisionRule.MODEL_PREDICT})
        if rule not in allowed:
            raise ValueError(f"decision rule {rule} does not apply to {self.task}")
        if (
            rule is DecisionRule.MODEL_PREDICT
            and ad.PREDICTED not in caps
            and self.task
            in (
                Task.CLASSIFICATION,
                Task.MULTI_LABEL,
            )
        ):
            raise ValueError("model_predict needs a model with its own predict")
        self.decision_rule = rule

    def _input_specs(
        self, given: Sequence[TensorSpec | dict[str, Any] | str] | None, sample: Any
    ) -> tuple[TensorSpec, ...]:
        if given is not None:
            specs = []
            for s in given:
                if isinstance(s, TensorSpec):
                    specs.append(s)
                elif isinstance(s, str):
                    specs.append(TensorSpec(name=s, datatype="FP64"))
                else:
                    specs.append(TensorSpec(**s))
            return tuple(specs)
        if self.task is Task.SEQ2SEQ:
            return (TensorSpec(name="text", datatype="BYTES"),)
        return infer_input_schema(self.model, sample)

    def available_outputs(self) -> list[str]:
        """Output names this model can give (for metadata, schemas and error messages)."""
        caps, task = self._caps, self.task
        scores = bool(caps & {ad.PROBABILITIES, ad.LOGITS})
        if task is Task.CLASSIFICATION:
            out = ["label"] + (["score", "probabilities"] if scores else [])
            out += ["logits"] if ad.LOGITS in caps else []
            return out + (["decision_function"] if ad.DECISION in caps else [])
        if task is Task.MULTI_LABEL:
            out = ["labels"] + (["probabilities"] if scores else [])
            return out + (["logits"] if ad.LOGITS in caps else [])
        if task is Task.REGRESSION:
            return ["prediction"] + (["std", "lower", "upper"] if ad.STD in caps else [])
        return ["generated_text", "sequence_score", "finish_reason", "token_logprobs"]

    # --- running ----------------------------------------------------------------------------

    def needs(self, requested: tuple[str, ...] | None) -> frozenset[str]:
        """The raw values (hence model calls) a request needs; cached per ``outputs`` tuple."""
        cached = self._needs_cache.get(requested)
        if cached is not None:
            return cached
        caps, rule, task = self._caps, self.decision_rule, self.task
        needs: set[str] = set()
        if task is Task.SEQ2SEQ:
            needs.add(ad.GENERATIONS)
        elif task is Task.REGRESSION:
            needs.add(ad.PREDICTED)
            if ad.STD in caps and (requested is None or {"std", "lower", "upper"} & set(requested)):
                needs.add(ad.STD)
        else:
            score_source = ad.LOGITS if ad.LOGITS in caps else ad.PROBABILITIES
            if rule is DecisionRule.MODEL_PREDICT:
                needs.add(ad.PREDICTED)
            elif rule is DecisionRule.ARGMAX and not caps & {ad.PROBABILITIES, ad.LOGITS}:
                needs.add(ad.DECISION)
            else:
                needs.add(score_source)
            wanted = set(requested) if requested is not None else {"probabilities", "logits"}
            if wanted & {"probabilities", "score", "logits"} and caps & {
                ad.PROBABILITIES,
                ad.LOGITS,
            }:
                needs.add(score_source)
            if "decision_function" in wanted and ad.DECISION in caps:
                needs.add(ad.DECISION)
        result = frozenset(needs & (caps | {ad.GENERATIONS}))
        self._needs_cache[requested] = result
        return result

    def _params(self, parameters: dict[str, Any] | None, requested: tuple[str, ...] | None):
        if self.task is not Task.SEQ2SEQ:
            if parameters:
                name = next(iter(parameters))
                raise InvalidInput(
                    f"unknown parameter {name!r} for a {self.task} model",
                    field=f"parameters.{name}",
                )
            return {}
        params: dict[str, Any] = {"num_return_sequences": 1}
        for key, value in (parameters or {}).items():
            if key == "return_logprobs":
                if type(value) is not bool:
                    raise InvalidInput(
                        "return_logprobs must be true or false", field=f"parameters.{key}"
                    )
                params[key] = value
                continue
            spec = _SEQ2SEQ_PARAMS.get(key)
            if spec is None:
                raise InvalidInput(
                    f"unknown parameter {key!r}; known: return_logprobs, "
                    + ", ".join(_SEQ2SEQ_PARAMS),
                    field=f"parameters.{key}",
                )
            typ, lo, hi = spec
            if type(value) is not typ or not lo <= value <= hi:
                raise InvalidInput(
                    f"{key} must be an integer from {lo} to {hi}", field=f"parameters.{key}"
                )
            params[key] = value
        if requested is not None and "token_logprobs" in requested:
            params["return_logprobs"] = True
        params.setdefault("return_logprobs", False)
        return params

    def shape(self, raw: RawOutput, params: dict[str, Any]) -> Shaped:
        task = self.task
        if task is Task.CLASSIFICATION:
            return shape_classification(
                raw,
                labels=self.labels,
                class_index=self.class_index,
                rule=self.decision_rule,
                threshold=self.threshold,
            )
        if task is Task.MULTI_LABEL:
            return shape_multilabel(
                raw, labels=self.labels, rule=self.decision_rule, thresholds=self.thresholds
            )
        if task is Task.REGRESSION:
            return shape_regression(raw, interval=self.interval)
        return shape_seq2seq(raw, num_candidates=params["num_return_sequences"])

    def run(
        self,
        model_input: Any,
        outputs: Sequence[str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Shaped:
        """Validated model input -> selected task-shaped columns, with one model call for the
        defaults. Model exceptions become ``ModelFailure`` (the cause stays chained for logs)."""
        requested = check_outputs(self.task, outputs)
        params = self._params(parameters, requested)
        needs = self.needs(requested)
        try:
            raw = self.adapter.forward(model_input, needs, params)
            shaped = self.shape(raw, params)
        except ModelAPIError:
            raise
        except Exception as e:
            raise ModelFailure(f"the model failed: {type(e).__name__}") from e
        if self.task is Task.SEQ2SEQ and not params.get("return_logprobs"):
            shaped.columns["token_logprobs"] = None
        return select(shaped, requested)

    def predict(
        self,
        x: Any,
        *,
        outputs: Sequence[str] | None = None,
        parameters: dict[str, Any] | None = None,
    ) -> Prediction:
        """In-process prediction: ``x`` is an array in schema column order, a DataFrame, a dict of
        columns, records (a list of dicts, as the HTTP API takes, or one dict), or (seq2seq) a
        list of strings. A model fitted on a DataFrame is called with one, in its fit order."""
        if self.task is Task.SEQ2SEQ and isinstance(x, (list, tuple)) and not _records(x):
            x = {"text": np.asarray(x, dtype=object)}
        model_input = array_to_input(x, self.schema)
        if self._frame_columns is not None:
            # in-process only: scikit-learn's DataFrame input path costs ~1 ms a call, ten
            # times the model call the server's fast path is built around
            model_input = ad.named_frame(model_input, *self._frame_columns)
        shaped = self.run(model_input, outputs, parameters)
        return Prediction.from_shaped(
            shaped, model_name=self.name, model_version=self.version or "unversioned"
        )

    def __repr__(self) -> str:
        return (
            f"Model(name={self.name!r}, version={self.version!r}, task={self.task.value!r}, "
            f"adapter={self.adapter.name!r}, decision_rule={self.decision_rule.value!r})"
        )


def _records(x: Sequence[Any]) -> bool:
    return bool(x) and isinstance(x[0], dict)


def _unit(v: float, what: str) -> float:
    v = float(v)
    if not 0.0 <= v <= 1.0:
        raise ValueError(f"{what} must be between 0 and 1, got {v}")
    return v
