"""component.yaml validation: every built-in passes; broken copies fail with file and key."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml
from mlfactory.components.catalog import BUILTIN_DIR
from mlfactory.components.spec import InvalidComponent, Version, load_component, schema

BUILTINS = sorted(p.parent for p in BUILTIN_DIR.glob("*/component.yaml"))
TESTS = Path(__file__).parent


def test_there_are_builtins_and_each_has_its_test():
    assert len(BUILTINS) >= 7
    for folder in BUILTINS:
        assert (TESTS / f"test_builtin_{folder.name}.py").is_file(), folder.name


@pytest.mark.parametrize("folder", BUILTINS, ids=lambda p: p.name)
def test_builtin_component_is_valid(folder):
    c = load_component(folder)
    assert c.name == folder.name
    assert c.doc_file is not None and c.summary and c.example
    assert c.source_file.name == f"{c.name}.py"


def copy_component(tmp_path: Path, name: str = "time_split") -> Path:
    dest = tmp_path / name
    shutil.copytree(BUILTIN_DIR / name, dest)
    return dest


def edit_yaml(folder: Path, **changes) -> None:
    path = folder / "component.yaml"
    data = yaml.safe_load(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key)
        else:
            data[key] = value
    path.write_text(yaml.safe_dump(data))


def errors_of(folder: Path) -> list[str]:
    with pytest.raises(InvalidComponent) as info:
        load_component(folder)
    return [str(e) for e in info.value.errors]


@pytest.mark.parametrize(
    ("changes", "key", "message"),
    [
        ({"version": "1.0"}, "version", "does not match"),
        ({"version": "1.0.0\n"}, "version", "does not match"),  # $ is the end, not a newline
        ({"name": "time_split\n"}, "name", "does not match"),
        ({"stability": "alpha"}, "stability", "is not one of"),
        ({"summary": None}, "(top)", "'summary' is a required property"),
        ({"colour": "blue"}, "(top)", "Additional properties are not allowed"),
        ({"last_verified": "26/11/2026"}, "last_verified", "does not match"),
        ({"last_verified": "2026-02-30"}, "last_verified", "day is out of range"),
        ({"entry_point": "nope"}, "entry_point", "no top-level function 'nope'"),
        ({"source": "missing.py"}, "source", "missing.py not found"),
    ],
)
def test_broken_yaml_is_reported_with_file_and_key(tmp_path, changes, key, message):
    folder = copy_component(tmp_path)
    edit_yaml(folder, **changes)
    errors = errors_of(folder)
    prefix = f"{folder / 'component.yaml'}: {key}: "
    assert any(e.startswith(prefix) and message in e for e in errors), errors


def test_nested_key_path_and_input_not_a_parameter(tmp_path):
    folder = copy_component(tmp_path)
    data = yaml.safe_load((folder / "component.yaml").read_text())
    data["inputs"][1]["type"] = "tensor"
    data["inputs"][2]["name"] = "deadline"
    edit_yaml(folder, inputs=data["inputs"])
    assert any(": inputs.1.type: 'tensor' is not one of" in e for e in errors_of(folder))
    edit_yaml(folder, inputs=[{**data["inputs"][1], "type": "float"}, data["inputs"][2]])
    assert errors_of(folder) == [
        f"{folder / 'component.yaml'}: inputs.1.name: 'deadline' is not a parameter of time_split"
    ]


def test_unparsable_yaml_and_source(tmp_path):
    folder = copy_component(tmp_path)
    (folder / "component.yaml").write_text("name: [unclosed\n")
    assert "invalid YAML (line 2)" in errors_of(folder)[0]
    folder = copy_component(tmp_path, "load_csv")
    (folder / "load_csv.py").write_text("def load_csv(:\n")
    assert ": source: load_csv.py line 1" in errors_of(folder)[0]


def test_source_is_not_executed_while_validating(tmp_path):
    folder = copy_component(tmp_path)
    marker = tmp_path / "ran"
    src = folder / "time_split.py"
    src.write_text(f"open({str(marker)!r}, 'w').close()\n" + src.read_text())
    load_component(folder)
    assert not marker.exists()


def test_schema_is_strict_json_schema():
    s = schema()
    assert s["additionalProperties"] is False
    assert s["properties"]["stability"]["enum"] == ["experimental", "beta", "stable", "deprecated"]


def test_semver_ordering():
    order = ["0.9.0", "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-beta.2", "1.0.0-beta.11", "1.0.0",
             "1.2.0", "1.10.0"]  # fmt: skip
    assert sorted(order, key=Version.parse) == order
    assert str(Version.parse("2.0.0-rc.1+build.5")) == "2.0.0-rc.1"
    with pytest.raises(ValueError, match="not a semantic version"):
        Version.parse("01.0.0")
