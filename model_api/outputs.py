"""Task-shaped outputs from one forward pass: pure functions, no I/O, no model calls.

An adapter runs the model once and hands over a ``RawOutput``; ``shape`` turns it into named
columns (labels, scores, probabilities, ...) according to the task and the declared decision
rule; ``select`` keeps the outputs a request asked for; ``to_records`` makes one JSON-ready dict
per row. The same columns feed the Open Inference Protocol tensors (``protocol.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from statistics import NormalDist
from typing import Any

import numpy as np

from .errors import InvalidInput, ModelFailure
from .tasks import DEFAULT_OUTPUTS, DecisionRule, Task, known_outputs


@dataclass(slots=True)
class Generation:
    """One seq2seq candidate."""

    text: str
    score: float | None = None  # sequence log-probability (or the generator's own score)
    finish_reason: str = "stop"  # stop | length | ...
    token_logprobs: list[float] | None = None


@dataclass(slots=True)
class RawOutput:
    """What one forward pass produced. Fields the model cannot give stay ``None``."""

    probabilities: np.ndarray | None = None  # [n, k] per class / [n, L] per label
    logits: np.ndarray | None = None  # pre-activation scores (torch, callables)
    decision_function: np.ndarray | None = None  # scikit-learn's decision_function
    predicted: np.ndarray | None = None  # the model's own predict (classes, values, indicators)
    std: np.ndarray | None = None
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    generations: list[list[Generation]] | None = None
    calls: int = 0  # model calls made; the tests and the benchmark assert on it


@dataclass(slots=True)
class Shaped:
    """Named output columns plus the rule that produced the labels."""

    task: Task
    decision_rule: DecisionRule
    thresholds: dict[str, float] | None
    labels: tuple[str, ...]  # class / label names, in column order ("" tuple for regression)
    columns: dict[str, Any] = field(default_factory=dict)
    rows: int = 0


# --- numerics ---------------------------------------------------------------------------------


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax, stable for large logits."""
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


def sigmoid(z: np.ndarray) -> np.ndarray:
    z = np.asarray(z, dtype=np.float64)
    # exp of a negative number never overflows
    ez = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + ez), ez / (1.0 + ez))


def _as_2d(a: np.ndarray) -> np.ndarray:
    a = np.asarray(a, dtype=np.float64)
    return a.reshape(-1, 1) if a.ndim == 1 else a


# --- shaping ----------------------------------------------------------------------------------


@lru_cache(maxsize=256)
def _label_array(labels: tuple[str, ...]) -> np.ndarray:
    # built once per label set: indexing it is the hot path of every classification
    arr = np.asarray(labels, dtype=object)
    arr.flags.writeable = False
    return arr


def shape_classification(
    raw: RawOutput,
    *,
    labels: Sequence[str],
    class_index: Mapping[Any, int],
    rule: DecisionRule,
    threshold: float | None = None,
) -> Shaped:
    """Label, score and per-class raw values for single-label classification.

    ``class_index`` maps the model's own class values (what its ``predict`` returns) to column
    positions; ``labels`` gives each column its public name.
    """
    k = len(labels)
    proba = raw.probabilities
    logits = raw.logits
    if proba is None and logits is not None:
        logits = _as_2d(logits)
        # one logit column = binary with a sigmoid head; several = softmax head
        if logits.shape[1] == 1 and k == 2:
            p1 = sigmoid(logits[:, 0])
            proba = np.column_stack((1.0 - p1, p1))
        else:
            proba = softmax(logits)
    if proba is not None:
        proba = _as_2d(proba)
        if proba.shape[1] != k:
            raise ModelFailure(
                f"the model returned {proba.shape[1]} probability columns for {k} declared labels"
            )
    decision = raw.decision_function
    if rule is DecisionRule.ARGMAX:
        scores = proba if proba is not None else decision
        if scores is None:
            raise ModelFailure("argmax needs probabilities, logits or a decision function")
        scores = np.asarray(scores)
        # binary decision_function is one column: positive class when > 0
        idx = (scores > 0).astype(np.intp) if scores.ndim == 1 else scores.argmax(axis=1)
        thresholds = None
    elif rule is DecisionRule.THRESHOLD:
        if proba is None or k != 2 or threshold is None:
            raise ModelFailure("the threshold rule needs a binary model with probabilities")
        idx = (proba[:, 1] >= threshold).astype(np.intp)
        thresholds = {labels[1]: float(threshold)}
    elif rule is DecisionRule.MODEL_PREDICT:
        if raw.predicted is None:
            raise ModelFailure("the model's predict returned nothing")
        try:
            idx = np.fromiter(
                (class_index[v] for v in raw.predicted.tolist()), np.intp, len(raw.predicted)
            )
        except KeyError as e:
            raise ModelFailure(f"the model predicted a class it did not declare: {e}") from None
        thresholds = None
    else:
        raise ModelFailure(f"decision rule {rule} does not apply to classification")
    n = len(idx)
    cols: dict[str, Any] = {"label": _label_array(tuple(labels))[idx]}
    cols["score"] = proba[np.arange(n), idx] if proba is not None else None
    cols["probabilities"] = proba
    cols["logits"] = None if logits is None else _as_2d(logits)
    cols["decision_function"] = None if decision is None else np.asarray(decision, np.float64)
    return Shaped(Task.CLASSIFICATION, rule, thresholds, tuple(labels), cols, n)


def shape_multilabel(
    raw: RawOutput,
    *,
    labels: Sequence[str],
    rule: DecisionRule,
    thresholds: Sequence[float] | None = None,
) -> Shaped:
    """Per-label on/off, probabilities and the thresholds used."""
    proba = raw.probabilities
    if proba is None and raw.logits is not None:
        proba = sigmoid(raw.logits)
    if proba is not None:
        proba = _as_2d(proba)
        if proba.shape[1] != len(labels):
            raise ModelFailure(
                f"the model returned {proba.shape[1]} probability columns "
                f"for {len(labels)} declared labels"
            )
    if rule is DecisionRule.PER_LABEL_THRESHOLD:
        if proba is None or thresholds is None:
            raise ModelFailure("per-label thresholds need per-label probabilities")
        on = proba >= np.asarray(thresholds, dtype=np.float64)
        used = dict(zip(labels, map(float, thresholds), strict=True))
    elif rule is DecisionRule.MODEL_PREDICT:
        if raw.predicted is None:
            raise ModelFailure("the model's predict returned nothing")
        on = np.asarray(raw.predicted).astype(bool)
        used = None
    else:
        raise ModelFailure(f"decision rule {rule} does not apply to multi-label models")
    cols = {
        "labels": on,
        "probabilities": proba,
        "logits": None if raw.logits is None else _as_2d(raw.logits),
    }
    return Shaped(Task.MULTI_LABEL, rule, used, tuple(labels), cols, len(on))


def shape_regression(raw: RawOutput, *, interval: float = 0.95) -> Shaped:
    """Prediction, plus std and a central interval when the model gives a spread."""
    if raw.predicted is None:
        raise ModelFailure("the regressor returned no prediction")
    pred = np.asarray(raw.predicted, dtype=np.float64)
    if pred.ndim == 2 and pred.shape[1] == 1:
        pred = pred[:, 0]
    std = None if raw.std is None else np.asarray(raw.std, dtype=np.float64).reshape(pred.shape)
    lower, upper = raw.lower, raw.upper
    if lower is None and upper is None and std is not None:
        z = NormalDist().inv_cdf(0.5 + interval / 2.0)
        lower, upper = pred - z * std, pred + z * std
    cols = {"prediction": pred, "std": std, "lower": lower, "upper": upper}
    thresholds = None
    return Shaped(Task.REGRESSION, DecisionRule.MODEL_PREDICT, thresholds, (), cols, len(pred))


def shape_seq2seq(raw: RawOutput, *, num_candidates: int) -> Shaped:
    """Generated text candidates per input, best first, with scores and finish reasons."""
    gens = raw.generations
    if gens is None:
        raise ModelFailure("the generator returned nothing")
    text, score, reason, logprobs = [], [], [], []
    for row in gens:
        if len(row) < num_candidates:
            raise ModelFailure(
                f"the generator returned {len(row)} candidates, {num_candidates} were asked for"
            )
        # best first; candidates without a score keep their order, after scored ones
        ranked = sorted(
            row, key=lambda g: float("-inf") if g.score is None else g.score, reverse=True
        )[:num_candidates]
        text.append([g.text for g in ranked])
        score.append([g.score for g in ranked])
        reason.append([g.finish_reason for g in ranked])
        logprobs.append([g.token_logprobs for g in ranked])
    cols = {
        "generated_text": text,
        "sequence_score": score,
        "finish_reason": reason,
        "token_logprobs": logprobs,
    }
    return Shaped(Task.SEQ2SEQ, DecisionRule.MODEL_PREDICT, None, (), cols, len(gens))


# --- selection and records --------------------------------------------------------------------


def check_outputs(task: Task, requested: Sequence[str] | None) -> tuple[str, ...] | None:
    """Validate a request's ``outputs`` names against the task. ``None`` means the defaults."""
    if requested is None:
        return None
    if isinstance(requested, str) or not isinstance(requested, Sequence):
        raise InvalidInput("outputs must be a list of output names", field="outputs")
    allowed = known_outputs(task)
    for i, name in enumerate(requested):
        if name not in allowed:
            raise InvalidInput(
                f"unknown output {name!r} for a {task} model; known: {', '.join(allowed)}",
                field=f"outputs[{i}]",
            )
    return tuple(dict.fromkeys(requested))


def select(shaped: Shaped, requested: tuple[str, ...] | None) -> Shaped:
    """Keep the requested outputs (or the task's defaults that the model could give).

    Asking for an output the model cannot give (``std`` from a plain linear regression) is a
    client error that names it, not a silent ``null``.
    """
    cols = shaped.columns
    if requested is None:
        names = [n for n in DEFAULT_OUTPUTS[shaped.task] if cols.get(n) is not None]
    else:
        missing = [n for n in requested if cols.get(n) is None]
        if missing:
            have = [n for n in known_outputs(shaped.task) if cols.get(n) is not None]
            raise InvalidInput(
                f"this model cannot give {', '.join(missing)}; it gives: {', '.join(have)}",
                field="outputs",
                details={"unavailable": missing},
            )
        names = list(requested)
    return Shaped(
        shaped.task,
        shaped.decision_rule,
        shaped.thresholds,
        shaped.labels,
        {n: cols[n] for n in names},
        shaped.rows,
    )


def _named(row: list[float], labels: tuple[str, ...]) -> dict[str, float]:
    return dict(zip(labels, row, strict=True))


def to_records(shaped: Shaped) -> list[dict[str, Any]]:
    """One JSON-ready dict per input row (values are Python scalars, lists and dicts)."""
    n, labels = shaped.rows, shaped.labels
    out: list[dict[str, Any]] = [{} for _ in range(n)]
    for name, col in shaped.columns.items():
        if col is None:
            continue
        if shaped.task is Task.MULTI_LABEL and name == "labels":
            names = _label_array(labels)
            values = [names[row].tolist() for row in col]
        elif isinstance(col, np.ndarray):
            values = col.tolist()
            per_label = name in ("probabilities", "logits") or (
                name == "decision_function" and col.ndim == 2
            )
            if per_label and col.ndim == 2 and col.shape[1] == len(labels):
                values = [_named(v, labels) for v in values]
        else:
            values = col
        for rec, v in zip(out, values, strict=True):
            rec[name] = v
    return out
