"""The vocabulary of the prediction API: tasks, decision rules, output names and versions.

Everything here is data; the shaping logic lives in ``outputs.py``.
"""

from __future__ import annotations

from enum import StrEnum

#: Version of the task-shaped payload (records and tensors). Bumped on any change a client
#: could notice: a renamed field, a changed type, a changed default set of outputs.
OUTPUT_SCHEMA_VERSION = "1"
#: The wire API's own version; it is also the first path segment.
API_VERSION = "v2"


class Task(StrEnum):
    CLASSIFICATION = "classification"
    REGRESSION = "regression"
    MULTI_LABEL = "multi-label"
    SEQ2SEQ = "seq2seq"


class DecisionRule(StrEnum):
    """Which rule turned raw values into the returned labels (or values)."""

    #: label = class with the highest probability (or logit / decision value)
    ARGMAX = "argmax"
    #: binary only: positive label when P(positive) >= threshold
    THRESHOLD = "threshold"
    #: the model's own ``predict`` decided (e.g. SVC, TunedThresholdClassifierCV, regressors)
    MODEL_PREDICT = "model_predict"
    #: multi-label: label j on when P(label j) >= thresholds[j]
    PER_LABEL_THRESHOLD = "per_label_threshold"


# Outputs each task can return. ``default`` ones come back when a request names none;
# ``on_request`` ones only when asked for (they cost extra work or bytes).
DEFAULT_OUTPUTS: dict[Task, tuple[str, ...]] = {
    Task.CLASSIFICATION: ("label", "score", "probabilities", "logits"),
    Task.REGRESSION: ("prediction", "std", "lower", "upper"),
    Task.MULTI_LABEL: ("labels", "probabilities", "logits"),
    Task.SEQ2SEQ: ("generated_text", "sequence_score", "finish_reason"),
}
ON_REQUEST_OUTPUTS: dict[Task, tuple[str, ...]] = {
    Task.CLASSIFICATION: ("decision_function",),
    Task.REGRESSION: (),
    Task.MULTI_LABEL: (),
    Task.SEQ2SEQ: ("token_logprobs",),
}


def known_outputs(task: Task) -> tuple[str, ...]:
    return DEFAULT_OUTPUTS[task] + ON_REQUEST_OUTPUTS[task]
