"""Errors in a notebook: the message first, then only the user's own lines."""

from __future__ import annotations

import os
import re

import numpy as np
import pytest
from mlfactory.model_api import InvalidInput, Model, ModelFailure, errors
from mlfactory.model_api.errors import MAX_USER_FRAMES, brief_traceback

from .conftest import IRIS_FEATURES

ANSI = re.compile(r"\x1b\[[0-9;]*m")
PACKAGE = os.path.dirname(errors.__file__)


def plain(lines: list[str]) -> list[str]:
    return [line.strip() for line in ANSI.sub("", "\n".join(lines)).splitlines()]


def predict_missing_field(model: Model) -> None:
    record = dict.fromkeys(IRIS_FEATURES[:3], 1.0)
    model.predict([record])  # <- the user's line


def test_invalid_input_shows_the_message_then_the_users_line(iris_model):
    with pytest.raises(InvalidInput) as e:
        predict_missing_field(iris_model)
    lines = plain(e.value._render_traceback_())
    assert lines[0] == "InvalidInput: records[0] is missing 'petal_width'"
    assert "model.predict([record])  # <- the user's line" in lines
    assert not any(PACKAGE in line for line in lines)
    assert len(lines) <= 1 + 2 * MAX_USER_FRAMES + 1


def test_cells_are_named_as_ipython_names_them(iris_model):
    with pytest.raises(InvalidInput) as e:
        predict_missing_field(iris_model)
    here = __file__
    lines = brief_traceback(e.value, code_name=lambda f: "Cell In[7]" if f == here else None)
    assert any(line.startswith("Cell In[7], line ") for line in plain(lines))


def test_a_model_failure_shows_the_models_own_error_and_line():
    def broken(x):
        raise ZeroDivisionError("the model divided by zero")  # <- model code

    model = Model(broken, task="regression", name="broken", input_schema=["a"])
    with pytest.raises(ModelFailure) as e:
        model.predict(np.ones((1, 1)))
    lines = plain(e.value._render_traceback_())
    assert lines[0] == "ModelFailure: the model failed: ZeroDivisionError"
    assert "caused by ZeroDivisionError: the model divided by zero" in lines
    assert any("<- model code" in line for line in lines)


def test_frames_marked_tracebackhide_are_left_out():
    def helper():
        __tracebackhide__ = True
        raise InvalidInput("x is wrong", field="x")

    with pytest.raises(InvalidInput) as e:
        helper()
    lines = plain(brief_traceback(e.value))
    assert not any(line.endswith("in helper") or "raise" in line for line in lines)
    assert "helper()" in lines  # the calling line stays
