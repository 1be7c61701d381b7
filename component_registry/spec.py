"""Loading and validating one component folder into a typed `Component`.

`component.yaml` is checked against `schema/component.schema.json` (the one definition,
shared with the TypeScript side), then cross-checked against the source without running it.
Errors read "file: key.path: message" so an author can find the line to fix.
"""

from __future__ import annotations

import ast
import datetime as dt
import functools
import importlib.util
import json
import os
import re
import stat
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import fastjsonschema
import yaml

SCHEMA_PATH = Path(__file__).parent / "schema" / "component.schema.json"
STABILITIES = ("stable", "beta", "experimental", "deprecated")  # search tie-break order
_STR = "tag:yaml.org,2002:str"


class _Loader(getattr(yaml, "CSafeLoader", yaml.SafeLoader)):  # type: ignore[misc]
    """libyaml's safe loader (it parses ~10x faster: a catalog of 1,000 components is scanned
    at once), except that dates are read as ISO text: the schema (shared with TypeScript)
    speaks strings, and this spares a second walk over every document."""

    def construct_object(self, node: yaml.Node, deep: bool = False) -> Any:
        # Most of a component.yaml is plain strings: give them their text without the
        # generic machinery (anchor bookkeeping, constructor lookup), ~20% of the load.
        if node.tag == _STR and type(node) is yaml.ScalarNode:
            return node.value
        return super().construct_object(node, deep)


def _date_as_text(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> str:
    try:
        return loader.construct_yaml_timestamp(node).isoformat()
    except ValueError as e:  # 2026-02-30 looks like a date to YAML; say so, do not crash
        raise yaml.constructor.ConstructorError(
            None, None, f"{node.value!r} is not a date ({e})", node.start_mark
        ) from e


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _date_as_text)

_SEMVER = re.compile(
    r"^(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)(?:-([0-9A-Za-z.-]+))?(?:\+[0-9A-Za-z.-]+)?$"
)


@functools.cache
def schema() -> dict[str, Any]:
    return json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))


@functools.cache
def _validator() -> Any:
    """The full JSON Schema validator, for the list of errors in data `_fast_check` refused.

    Imported here rather than at the top: ``import jsonschema`` costs about a second of CPU
    (its format checkers build a grammar), which every kernel that calls `use()` and every
    valid catalog would otherwise pay for nothing."""
    import jsonschema

    def pattern(validator: Any, pattern: str, instance: Any, schema: Any) -> Any:
        # the anchors the schema means: Python's ``$`` also matches before a final newline,
        # which would let ``"name\n"`` through
        if not validator.is_type(instance, "string"):
            return
        anchored = pattern[:-1] + r"\Z" if pattern.endswith("$") else pattern
        if not re.search(anchored, instance):
            yield jsonschema.ValidationError(f"{instance!r} does not match {pattern!r}")

    strict = jsonschema.validators.extend(jsonschema.Draft202012Validator, {"pattern": pattern})
    return strict(schema())


@functools.cache
def _fast_check() -> Callable[[Any], Any]:
    """The schema compiled to Python once (fastjsonschema, ~20 ms): it tells valid from
    invalid ~15x faster than `jsonschema` walks the schema, with patterns anchored at the
    very end as `_validator` anchors them (``$`` becomes ``\\Z``). It stops at the first
    error, so data it refuses is walked again by `_validator` for the full list; a test keeps
    the two in agreement. ``use_default=False``: a check must not write defaults into data."""
    return fastjsonschema.compile(schema(), use_default=False)


@dataclass(frozen=True, order=True)
class Version:
    """A semantic version, ordered by semver precedence (build metadata ignored)."""

    major: int
    minor: int
    patch: int
    # Sort key: releases after pre-releases; numeric identifiers before alphanumeric ones.
    _pre_key: tuple[Any, ...] = field(default=((1,),), repr=False)
    prerelease: str = field(default="", compare=False)

    @classmethod
    def parse(cls, text: str) -> Version:
        m = _SEMVER.match(text)
        if not m:
            raise ValueError(f"{text!r} is not a semantic version (MAJOR.MINOR.PATCH)")
        pre = m.group(4) or ""
        if pre:
            key: tuple[Any, ...] = (
                (0,),
                *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")),
            )
        else:
            key = ((1,),)
        return cls(int(m.group(1)), int(m.group(2)), int(m.group(3)), key, pre)

    def __str__(self) -> str:
        base = f"{self.major}.{self.minor}.{self.patch}"
        return f"{base}-{self.prerelease}" if self.prerelease else base


@dataclass(frozen=True)
class Port:
    """A typed input or output; `has_default` tells optional inputs apart (None is a default)."""

    name: str
    type: str
    description: str
    has_default: bool = False
    default: Any = None
    choices: tuple[Any, ...] = ()


@dataclass(frozen=True)
class Component:
    name: str
    version: Version
    summary: str
    description: str
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    stability: str
    owners: tuple[str, ...]
    inputs: tuple[Port, ...]
    outputs: tuple[Port, ...]
    requirements: tuple[str, ...]
    example: str
    last_verified: dt.date
    folder: Path
    source_file: Path
    entry_point: str
    doc_file: Path | None
    source: str = "builtin"  # the catalog source it came from

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    def load(self) -> Callable[..., Any]:
        """Import the source file and return the entry point (runs the component's code)."""
        # A per-version module name lets several versions be imported side by side.
        mod_name = f"mlfactory_component_{self.name}_{str(self.version).replace('.', '_')}"
        mod_name = re.sub(r"\W", "_", mod_name)
        spec = importlib.util.spec_from_file_location(mod_name, self.source_file)
        assert spec and spec.loader
        module: ModuleType = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return getattr(module, self.entry_point)


@dataclass(frozen=True)
class ComponentError:
    file: str
    key: str
    message: str

    def __str__(self) -> str:
        return f"{self.file}: {self.key or '(top)'}: {self.message}"


class InvalidComponent(ValueError):
    def __init__(self, errors: list[ComponentError]) -> None:
        self.errors = errors
        super().__init__("\n".join(map(str, errors)))


def _key(path: Any) -> str:
    return ".".join(str(p) for p in path)


def validate_data(data: Any, file: str) -> list[ComponentError]:
    """Schema errors of already-parsed component.yaml data, in document order."""
    try:
        _fast_check()(data)
        return []  # the common case: a catalog of 1,000 valid components is checked at once
    except fastjsonschema.JsonSchemaException:
        pass
    errors = sorted(_validator().iter_errors(data), key=lambda e: list(map(str, e.path)))
    return [ComponentError(file, _key(e.absolute_path), e.message) for e in errors]


def _function_params(tree: ast.Module, name: str) -> list[str] | None:
    for node in tree.body:
        if isinstance(node, ast.FunctionDef) and node.name == name:
            a = node.args
            return [p.arg for p in (*a.posonlyargs, *a.args, *a.kwonlyargs)]
    return None


def _regular_file(path: Path) -> bool:
    """Whether `path` itself (a link is not followed) is a regular file."""
    try:
        return stat.S_ISREG(os.lstat(path).st_mode)
    except OSError:
        return False


def _cross_check(data: dict[str, Any], folder: Path, file: str) -> list[ComponentError]:
    errors: list[ComponentError] = []

    def err(key: str, message: str) -> None:
        errors.append(ComponentError(file, key, message))

    try:
        Version.parse(data["version"])
    except ValueError as e:
        err("version", str(e))
    try:
        dt.date.fromisoformat(data["last_verified"])
    except ValueError as e:
        err("last_verified", str(e))
    for port in ("inputs", "outputs"):
        names = [p["name"] for p in data[port]]
        for dup in sorted({n for n in names if names.count(n) > 1}):
            err(port, f"{dup!r} is listed more than once")
        for i, p in enumerate(data[port]):
            if "choices" in p and "default" in p and p["default"] not in p["choices"]:
                err(f"{port}.{i}.default", f"{p['default']!r} is not one of {p['choices']!r}")
    doc = data.get("doc", "README.md")
    # The doc is served to whoever browses the catalog: it must stay inside the folder
    # (no "../", no absolute path, no symlink out of it). A bare name that is a regular
    # file, not a link, is inside: one lstat instead of resolving two paths.
    if not ("/" not in doc and os.sep not in doc and _regular_file(folder / doc)):
        if not (folder / doc).resolve().is_relative_to(folder.resolve()):
            err("doc", f"{doc} is outside the component folder; use a file in {folder.name}/")
        elif not (folder / doc).is_file():
            err("doc", f"{doc} not found in {folder.name}/")
    src = folder / data["source"]
    try:
        text = src.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
        err("source", f"{data['source']} not found in {folder.name}/")
        return errors
    except OSError as e:
        err("source", f"{data['source']} cannot be read: {e.strerror}")
        return errors
    except UnicodeDecodeError as e:
        err("source", f"{data['source']} is not UTF-8 text (byte {e.start})")
        return errors
    # Parsed, never imported: an organisation's source must not run code just by being listed.
    try:
        tree = ast.parse(text, filename=str(src))
    except SyntaxError as e:
        err("source", f"{data['source']} line {e.lineno}: {e.msg}")
        return errors
    except ValueError as e:  # Python 3.11: a null byte in the source
        err("source", f"{data['source']}: {e}")
        return errors
    params = _function_params(tree, data["entry_point"])
    if params is None:
        err("entry_point", f"no top-level function {data['entry_point']!r} in {data['source']}")
        return errors
    for i, p in enumerate(data["inputs"]):
        if p["name"] not in params:
            err(f"inputs.{i}.name", f"{p['name']!r} is not a parameter of {data['entry_point']}")
    return errors


def load_component(folder: Path | str, source: str = "builtin") -> Component:
    """Load and validate the component in `folder`; raises InvalidComponent listing every error."""
    folder = Path(folder)
    path = folder / "component.yaml"
    file = str(path)
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_Loader)  # noqa: S506
    except OSError as e:
        raise InvalidComponent([ComponentError(file, "", f"cannot read: {e.strerror}")]) from e
    except UnicodeDecodeError as e:
        message = f"not UTF-8 text (byte {e.start})"
        raise InvalidComponent([ComponentError(file, "", message)]) from e
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e)
        raise InvalidComponent([ComponentError(file, "", f"invalid YAML{where}: {problem}")]) from e
    errors = validate_data(data, file) or _cross_check(data, folder, file)
    if errors:
        raise InvalidComponent(errors)

    def ports(items: list[dict[str, Any]]) -> tuple[Port, ...]:
        return tuple(
            Port(
                name=p["name"],
                type=p["type"],
                description=p["description"],
                has_default="default" in p,
                default=p.get("default"),
                choices=tuple(p.get("choices", ())),
            )
            for p in items
        )

    doc = folder / data.get("doc", "README.md")
    return Component(
        name=data["name"],
        version=Version.parse(data["version"]),
        summary=data["summary"],
        description=data.get("description", ""),
        categories=tuple(data["categories"]),
        tags=tuple(data.get("tags", ())),
        stability=data["stability"],
        owners=tuple(data["owners"]),
        inputs=ports(data["inputs"]),
        outputs=ports(data["outputs"]),
        requirements=tuple(data.get("requirements", ())),
        example=data["example"],
        last_verified=dt.date.fromisoformat(data["last_verified"]),
        folder=folder,
        source_file=folder / data["source"],
        entry_point=data["entry_point"],
        doc_file=doc,  # checked above: a file inside the folder
        source=source,
    )
