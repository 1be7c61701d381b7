"""component.yaml validation: every built-in passes; broken copies fail with file and key."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path

import fastjsonschema
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


# -- the fast path (issue 20): a compiled schema says valid or not; refusals keep every error


def builtin_data(name: str) -> dict:
    """A built-in's component.yaml as the loader reads it (dates as text)."""
    from mlfactory.components import spec

    text = (BUILTIN_DIR / name / "component.yaml").read_text()
    return yaml.load(text, Loader=spec._Loader)  # noqa: S506 (libyaml's safe loader)


def _mutations(base: dict) -> list[dict]:
    """One document per way of breaking (or bending) each rule of the schema."""
    port = base["inputs"][0]
    bad_values = [None, 1, 1.5, True, "", "x\n", [], {}, ["a", "a"], {"a"}, b"x", [1], ["A"]]
    out: list[dict] = []
    for key in (*base, "doc", "requirements", "description", "tags", "colour", 1):
        out.append({k: v for k, v in base.items() if k != key})
        for value in bad_values:
            out.append({**base, key: value})
    for key in (*port, "default", "choices", "extra"):
        for value in [*bad_values, "tensor", "dataset"]:
            out.append({**base, "inputs": [{**port, key: value}, *base["inputs"][1:]]})
        out.append({**base, "inputs": [{k: v for k, v in port.items() if k != key}]})
    out += [
        {**base, "summary": "x" * 120},
        {**base, "summary": "x" * 121},
        {**base, "name": "a" * 64},
        {**base, "name": "a" * 65},
        {**base, "version": "1.0.0-rc.1+build.5"},
        {**base, "version": "1.0.0\n"},
        {**base, "categories": ["a", "a"]},
        {**base, "tags": ["ok", "Not-ok"]},
        {**base, "owners": [""]},
        {**base, "inputs": [{**port, "choices": [1, True]}]},
        {**base, "outputs": "result"},
        [base],
        "name: x",
        None,
    ]
    return out


def test_the_fast_check_agrees_with_jsonschema_on_every_rule():
    from mlfactory.components import spec

    base = builtin_data("time_split")
    cases = _mutations(base)
    refused = 0
    for data in cases:
        full = list(spec._validator().iter_errors(data))
        try:
            spec._fast_check()(data)
            fast_ok = True
        except fastjsonschema.JsonSchemaException:
            fast_ok = False
        assert fast_ok == (not full), (data, [e.message for e in full])
        refused += not fast_ok
    assert 0 < refused < len(cases)  # both kinds were tried


def test_a_refused_component_lists_every_schema_error_not_only_the_first(tmp_path):
    folder = copy_component(tmp_path)
    edit_yaml(folder, stability="alpha", version="1.0", colour="blue")
    errors = errors_of(folder)
    keys = sorted(e.split(": ")[1] for e in errors)
    assert keys == ["(top)", "stability", "version"], errors


def test_the_check_does_not_write_schema_defaults_into_the_data():
    from mlfactory.components import spec

    data = builtin_data("time_split")
    data.pop("doc", None)
    assert spec.validate_data(data, "component.yaml") == []
    assert "doc" not in data


def test_a_date_that_is_not_one_is_an_error_not_a_crash(tmp_path):
    folder = copy_component(tmp_path)
    path = folder / "component.yaml"
    text = path.read_text()
    assert "last_verified: '" in text or 'last_verified: "' in text or "last_verified: 2" in text
    lines = [
        "last_verified: 2026-02-30" if line.startswith("last_verified:") else line
        for line in text.splitlines()
    ]
    path.write_text("\n".join(lines) + "\n")
    [error] = errors_of(folder)
    assert "invalid YAML" in error and "'2026-02-30' is not a date" in error
    path.write_text(path.read_text().replace("2026-02-30", "2026-02-28"))
    assert load_component(folder).last_verified.isoformat() == "2026-02-28"  # unquoted: a date


def test_files_that_are_not_utf8_or_hold_a_null_byte_are_errors(tmp_path):
    folder = copy_component(tmp_path)
    (folder / "time_split.py").write_bytes(b"def time_split(x):\n    return '\xff'\n")
    assert ": source: time_split.py is not UTF-8 text" in errors_of(folder)[0]
    (folder / "time_split.py").write_bytes(b"def time_split(x):\x00\n")
    assert ": source: time_split.py" in errors_of(folder)[0]
    (folder / "component.yaml").write_bytes(b"name: caf\xe9\n")
    assert "component.yaml: (top): not UTF-8 text" in errors_of(folder)[0]


def test_the_doc_stays_inside_the_folder(tmp_path):
    folder = copy_component(tmp_path)
    (tmp_path / "secret.md").write_text("secret")
    edit_yaml(folder, doc="../secret.md")
    assert ": doc: ../secret.md is outside the component folder" in errors_of(folder)[0]
    (folder / "linked.md").symlink_to(tmp_path / "secret.md")
    edit_yaml(folder, doc="linked.md")
    assert ": doc: linked.md is outside the component folder" in errors_of(folder)[0]
    (folder / "docs").mkdir()
    (folder / "docs" / "guide.md").write_text("# guide\n")
    edit_yaml(folder, doc="docs/guide.md")
    assert load_component(folder).doc_file == folder / "docs" / "guide.md"
    edit_yaml(folder, doc="docs")
    assert ": doc: docs not found in" in errors_of(folder)[0]


def test_importing_the_registry_does_not_import_jsonschema():
    import subprocess
    import sys

    code = "import sys, mlfactory.components; print('jsonschema' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"  # kernels calling use() skip its ~1 s import


def test_the_loader_reads_what_the_safe_loader_reads_with_dates_as_text():
    from mlfactory.components import spec

    texts = [p.read_text() for p in sorted(BUILTIN_DIR.glob("*/component.yaml"))]
    texts.append(
        "base: &b {name: x, type: str, description: 'quoted: yes'}\n"
        "inputs: [*b, {<<: *b, name: y}, !!str 12, '12', 12, 1.5, true, null, ~]\n"
        "text: |\n  two\n  lines\n"
        "folded: >-\n  one\n  line\n"
        "key: &k value\nagain: *k\n"
        "when: 2026-01-31\nstamp: 2026-01-31 10:00:00\nquoted: '2026-01-31'\n"
        "tagged: !!timestamp 2026-03-01\nbinary: !!binary aGk=\n"
    )
    for text in texts:
        ours = yaml.load(text, Loader=spec._Loader)  # noqa: S506 (libyaml's safe loader)
        plain = yaml.safe_load(text)
        for key, value in plain.items():
            if isinstance(value, dt.date):
                plain[key] = value.isoformat()
        assert ours == plain
    assert ours["inputs"][1] == {"name": "y", "type": "str", "description": "quoted: yes"}
    assert ours["inputs"][2:5] == ["12", "12", 12] and ours["when"] == "2026-01-31"
    with pytest.raises(yaml.YAMLError):  # unsafe tags stay refused
        yaml.load("x: !!python/object/apply:os.system [true]\n", Loader=spec._Loader)  # noqa: S506
