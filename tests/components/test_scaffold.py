"""component_registry/scaffold.py: a notebook function becomes a valid component folder."""

from __future__ import annotations

import datetime as dt
import functools
import os
import pathlib
from collections import Counter
from typing import Any

import numpy as np
import pytest
import yaml
from mlfactory.components.scaffold import describe, imports_for, port_type, readme, scaffold
from mlfactory.components.spec import InvalidComponent, load_component

TODAY = dt.date(2026, 11, 26)


def scale_columns(
    data: dict[str, np.ndarray],
    columns: list[str],
    factor: float = 2.0,
    label: str | None = None,
    clip: bool = False,
) -> dict[str, np.ndarray]:
    """Multiply the chosen columns by a factor."""
    counts = Counter(columns)
    out = dict(data)
    for c in counts:
        out[c] = np.asarray(data[c]) * factor
    return out


def _helper(x):
    return x


def uses_a_notebook_helper(x: int) -> int:
    return _helper(x)


THRESHOLD = 3


def uses_a_notebook_variable(x: int) -> bool:
    return x > THRESHOLD


@functools.lru_cache
def decorated(n: int = 3) -> int:
    return n * 2


def test_port_types_from_annotations():
    assert port_type("str") == "str"
    assert port_type("float | None") == "float"
    assert port_type("int | str") == "any"
    assert port_type("np.ndarray") == "array"
    assert port_type("pd.DataFrame") == "dataset"
    assert port_type("list[str]") == "list"
    assert port_type("dict[str, np.ndarray]") == "dict"
    assert port_type("pathlib.Path") == "path"
    assert port_type("SomethingElse") == "any"
    # real objects too (a notebook without `from __future__ import annotations`)
    assert port_type(int) == "int"
    assert port_type(float | None) == "float"
    assert port_type(list[int]) == "list"
    assert port_type(pathlib.Path) == "path"
    assert port_type(os.PathLike) == "path"
    assert port_type(np.ndarray) == "array"
    assert port_type(Any) == "any"


def test_describe_reads_the_signature():
    data = describe(
        scale_columns,
        name="scale_columns",
        version="0.1.0",
        summary="Multiply columns by a factor.",
        categories=["preprocessing"],
        tags=["scaling"],
        owners=["alice"],
        descriptions={"columns": "Which columns to scale"},
        outputs={"scaled": "dict"},
        today=TODAY,
    )
    assert [(p["name"], p["type"], p.get("default", "-")) for p in data["inputs"]] == [
        ("data", "dict", "-"),
        ("columns", "list", "-"),
        ("factor", "float", 2.0),
        ("label", "str", None),
        ("clip", "bool", False),
    ]
    assert data["inputs"][1]["description"] == "Which columns to scale"
    assert data["outputs"] == [{"name": "scaled", "type": "dict", "description": "The scaled"}]
    assert data["description"] == "Multiply the chosen columns by a factor."
    assert data["example"] == "result = scale_columns(data, columns)"
    assert (data["source"], data["entry_point"], data["last_verified"]) == (
        "scale_columns.py", "scale_columns", "2026-11-26"
    )  # fmt: skip
    # without declared outputs, the return annotation gives one
    plain = describe(decorated, name="double", version="1.0.0", summary="x", today=TODAY)
    assert plain["outputs"] == [
        {"name": "result", "type": "int", "description": "What decorated returns"}
    ]


def test_imports_come_from_the_functions_globals():
    assert imports_for(scale_columns) == ["import numpy as np", "from collections import Counter"]
    with pytest.raises(ValueError, match="'_helper'"):
        imports_for(uses_a_notebook_helper)
    with pytest.raises(ValueError, match="'THRESHOLD'"):
        imports_for(uses_a_notebook_variable)


def test_scaffold_writes_a_valid_folder_that_runs(tmp_path):
    folder = tmp_path / "components" / "scale_columns"
    comp = scaffold(
        scale_columns,
        "scale_columns",
        "0.1.0",
        "Multiply columns by a factor.",
        folder,
        categories=["preprocessing"],
        tags=["scaling"],
        owners=["alice"],
        today=TODAY,
    )
    assert sorted(p.name for p in folder.iterdir()) == [
        "README.md", "component.yaml", "scale_columns.py"
    ]  # fmt: skip
    assert comp == load_component(folder, source="user")
    assert [p.name for p in comp.inputs] == ["data", "columns", "factor", "label", "clip"]
    assert comp.tags == ("scaling",) and comp.owners == ("alice",)
    source = (folder / "scale_columns.py").read_text()
    assert "import numpy as np\nfrom collections import Counter\n" in source
    assert source.rstrip().endswith("return out")
    readme_text = (folder / "README.md").read_text()
    assert readme_text.startswith("# scale_columns\n\nMultiply columns by a factor.")
    assert "| `factor` | float | The factor (default `2.0`) |" in readme_text
    # the written source works on its own, outside this module
    fn = comp.load()
    out = fn({"a": [1, 2], "b": [3]}, ["a"], factor=3.0)
    assert out["a"].tolist() == [3.0, 6.0] and out["b"] == [3]
    assert not list(tmp_path.glob("components/.*"))  # no staging left


def test_decorators_are_dropped(tmp_path):
    comp = scaffold(decorated, "double_it", "1.0.0", "Double.", tmp_path / "d", today=TODAY)
    text = (tmp_path / "d" / "double_it.py").read_text()
    assert "lru_cache" not in text and "def decorated(n: int = 3) -> int:" in text
    assert comp.load()() == 6


def test_refusals(tmp_path):
    def takes_star(*rows):
        return rows

    def odd_default(x=object()):  # noqa: B008 - the point of the test
        return x

    for func, says in (
        (lambda x: x, "def"),
        (takes_star, "named parameters"),
        (odd_default, "cannot be written"),
    ):
        with pytest.raises(ValueError, match=says):
            scaffold(func, "some_step", "0.1.0", "x", tmp_path / "f")
    with pytest.raises(ValueError, match="unknown parameters: nope"):
        describe(decorated, name="x_y", version="1.0.0", summary="x", descriptions={"nope": "x"})
    # the spec's own errors, and nothing left behind
    with pytest.raises(InvalidComponent) as e:
        scaffold(decorated, "Bad-Name", "0.1", "x", tmp_path / "bad")
    assert {err.key for err in e.value.errors} >= {"name", "version"}
    assert all(err.file == str(tmp_path / "bad" / "component.yaml") for err in e.value.errors)
    assert not (tmp_path / "bad").exists()
    assert not list(tmp_path.glob(".*"))
    # an existing folder is replaced only when asked
    target = tmp_path / "taken"
    target.mkdir()
    (target / "keep.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        scaffold(decorated, "double_it", "1.0.0", "Double.", target)
    assert (target / "keep.txt").read_text() == "mine"
    scaffold(decorated, "double_it", "1.0.0", "Double.", target, overwrite=True, today=TODAY)
    assert not (target / "keep.txt").exists()
    assert yaml.safe_load((target / "component.yaml").read_text())["name"] == "double_it"


def test_readme_escapes_table_cells():
    text = readme(
        {
            "name": "x_y",
            "summary": "s",
            "inputs": [{"name": "a", "type": "str", "description": "a | b"}],
            "outputs": [],
            "example": "x_y('a')",
        }
    )
    assert "| `a` | str | a \\| b |" in text and "## Outputs\n\n(none)" in text
