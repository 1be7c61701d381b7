"""Properties of task-shaped outputs (pure functions, no model)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from mlfactory.model_api.errors import InvalidInput, ModelFailure
from mlfactory.model_api.outputs import (
    Generation,
    RawOutput,
    check_outputs,
    select,
    shape_classification,
    shape_multilabel,
    shape_regression,
    shape_seq2seq,
    sigmoid,
    softmax,
    to_records,
)
from mlfactory.model_api.tasks import DecisionRule, Task

finite = st.floats(-50, 50, allow_nan=False, allow_infinity=False)


@st.composite
def logits(draw, min_k=2, max_k=6):
    n = draw(st.integers(1, 8))
    k = draw(st.integers(min_k, max_k))
    return draw(arrays(np.float64, (n, k), elements=finite))


def _labels(k: int) -> list[str]:
    return [f"c{i}" for i in range(k)]


@settings(max_examples=60, deadline=None)
@given(logits())
def test_softmax_probabilities_sum_to_one_and_label_is_argmax(z):
    k = z.shape[1]
    shaped = shape_classification(
        RawOutput(logits=z),
        labels=_labels(k),
        class_index={i: i for i in range(k)},
        rule=DecisionRule.ARGMAX,
    )
    p = shaped.columns["probabilities"]
    assert np.allclose(p.sum(axis=1), 1.0)
    assert (p >= 0).all()
    # the label is the class with the highest probability, and its score is that probability
    idx = [int(s[1:]) for s in shaped.columns["label"]]
    assert np.allclose(p[np.arange(len(idx)), idx], p.max(axis=1))
    assert np.allclose(shaped.columns["score"], p.max(axis=1))
    assert shaped.decision_rule is DecisionRule.ARGMAX and shaped.thresholds is None


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.integers(1, 10), elements=st.floats(0, 1)), st.floats(0, 1))
def test_binary_threshold_rule_picks_positive_at_or_above_threshold(p1, t):
    proba = np.column_stack((1 - p1, p1))
    shaped = shape_classification(
        RawOutput(probabilities=proba),
        labels=["no", "yes"],
        class_index={0: 0, 1: 1},
        rule=DecisionRule.THRESHOLD,
        threshold=t,
    )
    assert shaped.columns["label"].tolist() == ["yes" if v >= t else "no" for v in p1]
    assert shaped.thresholds == {"yes": t}


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_per_label_thresholds_apply_to_their_own_label(data):
    n = data.draw(st.integers(1, 8))
    k = data.draw(st.integers(1, 5))
    proba = data.draw(arrays(np.float64, (n, k), elements=st.floats(0, 1)))
    thresholds = data.draw(st.lists(st.floats(0, 1), min_size=k, max_size=k))
    shaped = shape_multilabel(
        RawOutput(probabilities=proba),
        labels=_labels(k),
        rule=DecisionRule.PER_LABEL_THRESHOLD,
        thresholds=thresholds,
    )
    records = to_records(shaped)
    for i in range(n):
        expected = [f"c{j}" for j in range(k) if proba[i, j] >= thresholds[j]]
        assert records[i]["labels"] == expected
    assert shaped.thresholds == dict(zip(_labels(k), thresholds, strict=True))


@settings(max_examples=40, deadline=None)
@given(logits(min_k=1, max_k=4))
def test_multilabel_logits_become_independent_sigmoids(z):
    shaped = shape_multilabel(
        RawOutput(logits=z),
        labels=_labels(z.shape[1]),
        rule=DecisionRule.PER_LABEL_THRESHOLD,
        thresholds=[0.5] * z.shape[1],
    )
    p = shaped.columns["probabilities"]
    assert np.allclose(p, 1 / (1 + np.exp(-z)))
    # threshold 0.5 on a sigmoid is the logit's sign (away from 0, where sigmoid rounds to 0.5)
    clear = np.abs(z) > 1e-9
    assert (shaped.columns["labels"][clear] == (z >= 0)[clear]).all()


def test_model_predict_rule_keeps_the_models_label_even_against_argmax():
    # SVC-like: its predict disagrees with argmax of its probabilities
    raw = RawOutput(probabilities=np.array([[0.6, 0.4]]), predicted=np.array(["b"]))
    shaped = shape_classification(
        raw, labels=["A", "B"], class_index={"a": 0, "b": 1}, rule=DecisionRule.MODEL_PREDICT
    )
    assert shaped.columns["label"].tolist() == ["B"]
    assert shaped.columns["score"].tolist() == [0.4]  # probability of the returned label


def test_model_predict_rule_refuses_undeclared_classes():
    raw = RawOutput(predicted=np.array(["zebra"]))
    with pytest.raises(ModelFailure, match="did not declare"):
        shape_classification(
            raw, labels=["A", "B"], class_index={"a": 0, "b": 1}, rule=DecisionRule.MODEL_PREDICT
        )


def test_binary_decision_function_argmax_is_its_sign():
    raw = RawOutput(decision_function=np.array([-0.5, 0.0, 2.0]))
    shaped = shape_classification(
        raw, labels=["n", "p"], class_index={0: 0, 1: 1}, rule=DecisionRule.ARGMAX
    )
    assert shaped.columns["label"].tolist() == ["n", "n", "p"]
    assert shaped.columns["score"] is None


def test_single_logit_binary_head_uses_sigmoid():
    raw = RawOutput(logits=np.array([[0.0], [2.0]]))
    shaped = shape_classification(
        raw, labels=["n", "p"], class_index={0: 0, 1: 1}, rule=DecisionRule.ARGMAX
    )
    assert np.allclose(shaped.columns["probabilities"][:, 1], sigmoid(np.array([0.0, 2.0])))


def test_probability_columns_must_match_labels():
    with pytest.raises(ModelFailure, match="3 probability columns for 2"):
        shape_classification(
            RawOutput(probabilities=np.ones((1, 3)) / 3),
            labels=["a", "b"],
            class_index={},
            rule=DecisionRule.ARGMAX,
        )


def test_regression_interval_from_std():
    shaped = shape_regression(
        RawOutput(predicted=np.array([10.0]), std=np.array([2.0])), interval=0.95
    )
    assert shaped.columns["lower"][0] == pytest.approx(10 - 1.959964 * 2, abs=1e-5)
    assert shaped.columns["upper"][0] == pytest.approx(10 + 1.959964 * 2, abs=1e-5)
    assert shaped.decision_rule is DecisionRule.MODEL_PREDICT


def test_seq2seq_ranks_candidates_and_trims_to_the_number_asked():
    gens = [
        [
            Generation("low", score=-5.0, finish_reason="length"),
            Generation("high", score=-1.0, token_logprobs=[-0.5, -0.5]),
            Generation("mid", score=-2.0),
        ]
    ]
    shaped = shape_seq2seq(RawOutput(generations=gens), num_candidates=2)
    rec = to_records(shaped)[0]
    assert rec["generated_text"] == ["high", "mid"]
    assert rec["sequence_score"] == [-1.0, -2.0]
    assert rec["token_logprobs"] == [[-0.5, -0.5], None]
    with pytest.raises(ModelFailure, match="3 candidates, 4 were asked"):
        shape_seq2seq(RawOutput(generations=gens), num_candidates=4)


@settings(max_examples=40, deadline=None)
@given(logits(), st.lists(st.sampled_from(["label", "score", "probabilities"]), min_size=1))
def test_select_returns_exactly_what_was_asked(z, asked):
    k = z.shape[1]
    shaped = shape_classification(
        RawOutput(probabilities=softmax(z)),
        labels=_labels(k),
        class_index={},
        rule=DecisionRule.ARGMAX,
    )
    requested = check_outputs(Task.CLASSIFICATION, asked)
    records = to_records(select(shaped, requested))
    assert all(list(r) == list(dict.fromkeys(asked)) for r in records)
    for r in records:
        if "probabilities" in r:
            assert list(r["probabilities"]) == _labels(k)


def test_defaults_hold_every_raw_value_the_model_gave():
    shaped = shape_classification(
        RawOutput(probabilities=np.array([[0.2, 0.8]])),
        labels=["a", "b"],
        class_index={},
        rule=DecisionRule.ARGMAX,
    )
    assert list(to_records(select(shaped, None))[0]) == ["label", "score", "probabilities"]


def test_unknown_or_unavailable_outputs_name_the_field():
    with pytest.raises(InvalidInput) as e:
        check_outputs(Task.CLASSIFICATION, ["label", "colour"])
    assert e.value.field == "outputs[1]"
    shaped = shape_regression(RawOutput(predicted=np.array([1.0])))
    with pytest.raises(InvalidInput, match="cannot give std"):
        select(shaped, ("prediction", "std"))
