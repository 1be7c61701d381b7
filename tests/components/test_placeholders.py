"""An inserted cell run before its ``...`` placeholders are filled says which input to fill
and with what, instead of failing deep inside numpy."""

from __future__ import annotations

import re

import numpy as np
import pytest
from mlfactory.components.catalog import BUILTIN, Catalog
from mlfactory.components.placeholders import PlaceholderError, expects, placeholder_message
from mlfactory.components.snippet import snippet

GENERIC = placeholder_message("x", None).split("with ", 1)[1]


def test_messages():
    assert placeholder_message("X", "your feature table") == (
        "X is required: replace `...` with your feature table"
    )
    optional = placeholder_message("labels", "the class order", has_default=True)
    assert optional.startswith("labels is still `...`: replace `...` with the class order")
    assert "remove `labels=...`" in optional


def test_expects_checks_every_input_and_passes_the_rest():
    @expects(X="your feature table")
    def fit(X, y, scale=1.0):
        return len(X) * scale

    assert fit([1, 2], [0, 1], scale=2.0) == 4.0
    with pytest.raises(PlaceholderError, match=r"^X is required: replace `\.\.\.` with your"):
        fit(..., [0, 1])
    with pytest.raises(TypeError, match=re.escape(f"y is required: replace `...` with {GENERIC}")):
        fit([1], y=...)
    with pytest.raises(PlaceholderError, match=r"^scale is still `\.\.\.`"):
        fit([1], [0], ...)
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'y'"):
        fit([1])  # a wrong call keeps Python's own message
    assert fit.__name__ == "fit" and fit.__wrapped__.__name__ == "fit"


def test_expects_refuses_a_name_the_function_lacks():
    with pytest.raises(ValueError, match="has no inputs Y"):
        expects(Y="typo")(lambda X: X)


BUILTINS = list(Catalog.from_sources([BUILTIN]))


@pytest.mark.parametrize("c", BUILTINS, ids=lambda c: c.name)
def test_each_builtin_names_each_required_input_specifically(c, component):
    fn = component(c.name)
    required = [p.name for p in c.inputs if not p.has_default]
    for name in required:
        args = {p: (... if p == name else None) for p in required}
        with pytest.raises(PlaceholderError) as caught:
            fn(**args)
        message = str(caught.value)
        assert message.startswith(f"{name} is required: replace `...` with ")
        assert GENERIC not in message, f"{c.name}.{name} has no description in @expects"


@pytest.mark.parametrize("c", BUILTINS, ids=lambda c: c.name)
def test_the_inserted_cell_run_unfilled_names_its_first_input(c, monkeypatch, tmp_path):
    monkeypatch.setenv("MLFACTORY_COMPONENT_CACHE", str(tmp_path))  # built-ins only
    monkeypatch.delenv("MLFACTORY_COMPONENT_SOURCES", raising=False)
    first = next(p.name for p in c.inputs if not p.has_default)
    with pytest.raises(PlaceholderError, match=rf"^{first} is required: replace `\.\.\.` with "):
        exec(compile(snippet(c), "<cell>", "exec"), {})  # noqa: S102 - the cell as inserted


def test_without_the_check_the_failure_is_obscure(component):
    """What the check replaces: the undecorated function fails far from the cause."""
    with pytest.raises(TypeError) as caught:
        component("train_classifier_cv").__wrapped__(..., ...)
    assert "replace" not in str(caught.value) and not isinstance(caught.value, PlaceholderError)
    assert np.asarray(...).shape == ()  # numpy takes `...` as a 0-d object: hence the old error
