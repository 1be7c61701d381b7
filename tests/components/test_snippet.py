"""The inserted cell: pinned version, inputs by name (defaults or required placeholders),
outputs assigned by name, a comment that cannot break out of its line."""

from __future__ import annotations

import ast
import dataclasses

import numpy as np
import pytest
from mlfactory.components.catalog import BUILTIN, Catalog
from mlfactory.components.snippet import comment_text, identifier, literal, snippet
from mlfactory.components.spec import Port


@pytest.fixture(scope="module")
def time_split():
    return Catalog.from_sources([BUILTIN]).resolve("time_split@1.0.0")


def test_time_split_cell(time_split):
    assert snippet(time_split) == (
        "# time_split 1.0.0 (builtin, beta): Split rows by time so the model trains on the past"
        " and is tested on the future.\n"
        "from mlfactory.components import use\n"
        "\n"
        'time_split = use("time_split@1.0.0")\n'
        "timestamps = ...  # required (array): One timestamp per row (numbers or datetime64)\n"
        "test_size = 0.2\n"
        "cutoff = None\n"
        "gap = None\n"
        "train_index, test_index = time_split(timestamps=timestamps, test_size=test_size,"
        " cutoff=cutoff, gap=gap)\n"
    )


def test_the_cell_runs_once_its_placeholders_are_filled(time_split):
    code = snippet(time_split).replace("timestamps = ...", "timestamps = np.arange(10)")
    ns: dict = {"np": np}
    exec(compile(code, "<cell>", "exec"), ns)  # noqa: S102 - the cell a user would run
    assert ns["test_index"].tolist() == [8, 9]
    assert ns["train_index"].tolist() == list(range(8))


def test_every_builtin_cell_parses():
    for c in Catalog.from_sources([BUILTIN]):
        tree = ast.parse(snippet(c))
        assert f'use("{c.ref}")' in snippet(c)
        assert isinstance(tree.body[-1], ast.Assign | ast.Expr)
        if len(c.outputs) == 1:  # the cell's value is the result, so running it shows it
            assert isinstance(tree.body[-1], ast.Expr) and tree.body[-2].targets[0].id == (
                tree.body[-1].value.id
            )


def test_comment_cannot_inject_lines(time_split):
    evil = dataclasses.replace(
        time_split,
        summary="Nice.\nimport os; os.system('x')\r\u2028\u2029\x85\x0bend\x00",
        inputs=(Port("timestamps", "array", "desc\nos.system('y')"),),
        outputs=(),
    )
    code = snippet(evil)
    assert "\nimport os" not in code and "\nos.system" not in code
    lines = code.splitlines()
    assert lines[0].startswith("# ") and "import os; os.system" in lines[0]
    assert all(not line.startswith("os.") and "\x00" not in line for line in lines)
    assert lines[-1] == "time_split(timestamps=timestamps)"  # no outputs: a bare call
    assert len(ast.parse(code).body) == 4


def test_one_output_keyword_outputs_and_a_clashing_input(time_split):
    c = dataclasses.replace(
        time_split,
        name="scale",
        inputs=(Port("scale", "float", "factor", True, 2.0), Port("x", "array", "values")),
        outputs=(Port("class", "array", "labels"),),
    )
    code = snippet(c)
    assert 'scale_component = use("scale@1.0.0")' in code
    assert "scale = 2.0\n" in code
    assert code.endswith("class_ = scale_component(scale=scale, x=x)\nclass_\n")


def test_defaults_without_a_literal_get_a_placeholder(time_split):
    c = dataclasses.replace(
        time_split,
        inputs=(
            Port("a", "float", "not a number", True, float("nan")),
            Port("b", "any", "raw bytes", True, b"\x00"),
            Port("c", "dict", "mapping", True, {"k": [1, "two", None]}),
            Port("d", "any", "a set", True, {1, 2}),
            Port("e", "any", "an object", True, object()),
        ),
    )
    code = snippet(c)
    assert "a = float('nan')\n" in code
    assert "b = b'\\x00'\n" in code and "c = {'k': [1, 'two', None]}\n" in code
    assert "d = {1, 2}\n" in code
    assert "e = ...  # default <object object at" in code


def test_helpers():
    assert comment_text("a\n\tb  c" + "x" * 300, limit=10) == "a b cxxxx…"
    assert identifier("class", rename_keywords=True) == "class_"
    for bad in ("class", "1x", "a-b", "__debug__", ""):
        with pytest.raises(ValueError):
            identifier(bad)
    assert literal(float("inf")) == "float('inf')"
    assert literal(object()) is None
