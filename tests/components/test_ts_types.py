"""The labextension's TypeScript types are generated from component.schema.json.

`npm run build:types` writes `labextension/src/components/componentSchema.ts` with
json-schema-to-typescript; this test runs the same command line (read from package.json)
into a temporary file and fails when the committed file differs, so the schema and the
panel's types cannot drift apart.
"""

from __future__ import annotations

import difflib
import json
import shlex
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
LABEXTENSION = ROOT / "labextension"
SCHEMA = ROOT / "component_registry" / "schema" / "component.schema.json"
GENERATED = LABEXTENSION / "src" / "components" / "componentSchema.ts"
JSON2TS = LABEXTENSION / "node_modules" / ".bin" / "json2ts"


def build_types_args() -> list[str]:
    """The `build:types` script of package.json, split into arguments."""
    scripts = json.loads((LABEXTENSION / "package.json").read_text())["scripts"]
    args = shlex.split(scripts["build:types"])
    assert args[0] == "json2ts", f"build:types should run json2ts: {args}"
    return args


def with_output(args: list[str], output: Path) -> list[str]:
    """The same arguments, writing to `output` instead of the committed file."""
    out = list(args)
    i = out.index("-o")
    assert (LABEXTENSION / out[i + 1]).resolve() == GENERATED, out[i + 1]
    out[i + 1] = str(output)
    return out


def test_build_types_reads_the_registry_schema():
    args = build_types_args()
    assert (LABEXTENSION / args[args.index("-i") + 1]).resolve() == SCHEMA


def test_committed_types_match_the_schema(tmp_path: Path):
    if not JSON2TS.exists():
        pytest.fail(f"{JSON2TS} is missing: run `npm install` in labextension/")
    fresh = tmp_path / "componentSchema.ts"
    args = with_output(build_types_args(), fresh)
    result = subprocess.run(
        [str(JSON2TS), *args[1:]],
        cwd=LABEXTENSION,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    expected, committed = fresh.read_text(), GENERATED.read_text()
    diff = "".join(
        difflib.unified_diff(
            committed.splitlines(keepends=True),
            expected.splitlines(keepends=True),
            "committed componentSchema.ts",
            "generated from component.schema.json",
        )
    )
    assert committed == expected, (
        "labextension/src/components/componentSchema.ts is out of date with "
        "component.schema.json: run `npm run build:types` in labextension/\n" + diff
    )


def test_generated_types_cover_every_schema_property():
    schema = json.loads(SCHEMA.read_text())
    text = GENERATED.read_text()
    for name in schema["properties"]:
        assert f"  {name}" in text, f"{name} is missing from componentSchema.ts"
