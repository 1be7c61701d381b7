"""Turning a function defined in a notebook into a component folder ready to publish.

``scaffold`` writes ``component.yaml`` (inputs from the signature, outputs as declared), the
function's source with the imports it uses, and a README, then checks the folder with the
spec. Everything but the final write is pure; ``describe`` is the dry run.
"""

from __future__ import annotations

import builtins
import datetime as dt
import dis
import inspect
import os
import pathlib
import secrets
import shutil
import textwrap
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

from .spec import Component, ComponentError, InvalidComponent, load_component

# Annotation → port type, by the annotation's qualified name (works for strings too).
_TYPES = {
    "str": "str",
    "int": "int",
    "float": "float",
    "bool": "bool",
    "Path": "path",
    "PathLike": "path",
    "pathlib.Path": "path",
    "os.PathLike": "path",
    "list": "list",
    "List": "list",
    "tuple": "list",
    "Sequence": "list",
    "dict": "dict",
    "Dict": "dict",
    "Mapping": "dict",
    "ndarray": "array",
    "np.ndarray": "array",
    "numpy.ndarray": "array",
    "Series": "array",
    "pd.Series": "array",
    "DataFrame": "dataset",
    "pd.DataFrame": "dataset",
    "pandas.DataFrame": "dataset",
    "BaseEstimator": "model",
    "Any": "any",
}
_PLAIN = (type(None), bool, int, float, str)


def port_type(annotation: Any) -> str:
    """The component port type for a parameter's annotation; ``any`` when unknown."""
    if annotation is inspect.Parameter.empty:
        return "any"
    if isinstance(annotation, str):
        text = annotation.replace("typing.", "").strip()
        base = text.split("[", 1)[0].strip()
        if "|" in text:  # `float | None`: the non-None side decides
            parts = [p.strip() for p in text.split("|") if p.strip() != "None"]
            return port_type(parts[0]) if len(parts) == 1 else "any"
        return _TYPES.get(base, _TYPES.get(base.rsplit(".", 1)[-1], "any"))
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        return port_type(args[0]) if len(args) == 1 else "any"
    if origin is not None:
        annotation = origin
    if annotation in (pathlib.Path, os.PathLike) or (
        isinstance(annotation, type) and issubclass(annotation, pathlib.PurePath)
    ):
        return "path"
    name = getattr(annotation, "__qualname__", None) or getattr(annotation, "__name__", "")
    module = getattr(annotation, "__module__", "") or ""
    if module.startswith("sklearn"):
        return "model"
    return _TYPES.get(f"{module.split('.')[0]}.{name}", _TYPES.get(name, "any"))


def _yaml_value(value: Any) -> bool:
    if isinstance(value, _PLAIN):
        return not (isinstance(value, float) and value != value)  # NaN is not YAML-safe
    if isinstance(value, list | tuple):
        return all(_yaml_value(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _yaml_value(v) for k, v in value.items())
    return False


def _global_names(code: types.CodeType) -> set[str]:
    """The global names a function (and the functions and comprehensions in it) reads."""
    names = {i.argval for i in dis.get_instructions(code) if i.opname == "LOAD_GLOBAL"}
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names |= _global_names(const)
    return names


def imports_for(func: Callable[..., Any]) -> list[str]:
    """Import lines for the modules and names ``func`` reads from its module's globals.

    Raises ValueError naming globals that cannot be imported (a helper or a variable defined
    in the notebook): a component must stand on its own.
    """
    lines: set[str] = set()
    missing = []
    scope = func.__globals__
    for name in sorted(_global_names(func.__code__)):
        if name not in scope:
            if not hasattr(builtins, name) and name != func.__name__:
                missing.append(name)
            continue
        value = scope[name]
        if isinstance(value, types.ModuleType):
            mod = value.__name__
            if mod == name:
                lines.add(f"import {mod}")
            elif "." in mod and mod.rsplit(".", 1)[1] == name:
                lines.add(f"from {mod.rsplit('.', 1)[0]} import {name}")
            else:
                lines.add(f"import {mod} as {name}")
            continue
        mod = getattr(value, "__module__", None)
        qual = getattr(value, "__qualname__", None) or getattr(value, "__name__", None)
        if mod and mod not in ("__main__", func.__module__) and qual == name:
            lines.add(f"from {mod} import {name}")
        elif value is not func:
            missing.append(name)
    if missing:
        raise ValueError(
            f"{func.__name__} uses {', '.join(repr(m) for m in missing)} from the notebook; "
            "move what it needs inside the function (or into an importable module)"
        )
    plain = sorted(x for x in lines if x.startswith("import "))
    return plain + sorted(x for x in lines if x.startswith("from "))


def function_source(func: Callable[..., Any]) -> str:
    """The function's own ``def`` (decorators dropped, dedented), from ``inspect``."""
    try:
        text = textwrap.dedent(inspect.getsource(func))
    except (OSError, TypeError) as e:
        raise ValueError(f"the source of {func!r} cannot be read: {e}") from None
    lines = text.splitlines()
    start = next(
        (i for i, line in enumerate(lines) if line.lstrip().startswith(("def ", "async def "))), 0
    )
    return "\n".join(lines[start:]).rstrip() + "\n"


def _outputs(
    func: Callable[..., Any], outputs: Mapping[str, str] | Sequence[Mapping[str, Any]] | None
) -> list[dict[str, Any]]:
    if outputs is None:
        ret = inspect.signature(func).return_annotation
        if ret in (None, "None"):
            return []
        return [
            {
                "name": "result",
                "type": port_type(ret),
                "description": f"What {func.__name__} returns",
            }
        ]
    if isinstance(outputs, Mapping):
        return [
            {"name": n, "type": t, "description": f"The {n.replace('_', ' ')}"}
            for n, t in outputs.items()
        ]
    return [dict(o) for o in outputs]


def describe(
    func: Callable[..., Any],
    *,
    name: str,
    version: str,
    summary: str,
    categories: Iterable[str] = ("custom",),
    tags: Iterable[str] = (),
    owners: Iterable[str] = (),
    descriptions: Mapping[str, str] | None = None,
    outputs: Mapping[str, str] | Sequence[Mapping[str, Any]] | None = None,
    description: str | None = None,
    requirements: Iterable[str] = (),
    example: str | None = None,
    stability: str = "experimental",
    today: dt.date | None = None,
) -> dict[str, Any]:
    """The ``component.yaml`` data for ``func`` (not yet checked against the schema).

    Decorators are looked through (and left out of the source): a component is the plain
    function.
    """
    func = inspect.unwrap(func)
    if not callable(func) or func.__name__ == "<lambda>" or not hasattr(func, "__code__"):
        raise ValueError("scaffold needs a function defined with def")
    descriptions = dict(descriptions or {})
    inputs = []
    for p in inspect.signature(func).parameters.values():
        if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            raise ValueError(f"*{p.name}: a component's inputs must be named parameters")
        port: dict[str, Any] = {
            "name": p.name,
            "type": port_type(p.annotation),
            "description": descriptions.pop(p.name, None) or f"The {p.name.replace('_', ' ')}",
        }
        if p.default is not p.empty:
            if not _yaml_value(p.default):
                raise ValueError(
                    f"{p.name}: its default {p.default!r} cannot be written to component.yaml; "
                    "use None (or a number, text, list) and build the value inside"
                )
            port["default"] = list(p.default) if isinstance(p.default, tuple) else p.default
        inputs.append(port)
    if descriptions:
        raise ValueError(f"descriptions for unknown parameters: {', '.join(sorted(descriptions))}")
    required = [p["name"] for p in inputs if "default" not in p]
    doc = inspect.getdoc(func) or ""
    data: dict[str, Any] = {
        "name": name,
        "version": version,
        "summary": summary,
        "description": description if description is not None else doc,
        "categories": list(categories),
        "tags": list(tags),
        "stability": stability,
        "owners": list(owners) or [os.environ.get("JUPYTERHUB_USER") or "unknown"],
        "source": f"{name}.py",
        "entry_point": func.__name__,
        "inputs": inputs,
        "outputs": _outputs(func, outputs),
        "requirements": list(requirements),
        "example": example or f"result = {func.__name__}({', '.join(required)})",
        "last_verified": (today or dt.date.today()).isoformat(),
    }
    if not data["description"]:
        del data["description"]
    if not data["tags"]:
        del data["tags"]
    if not data["requirements"]:
        del data["requirements"]
    return data


def readme(data: Mapping[str, Any]) -> str:
    """A short README from the component's metadata."""

    def rows(ports: Sequence[Mapping[str, Any]]) -> list[str]:
        if not ports:
            return ["(none)"]
        out = ["| name | type | description |", "|---|---|---|"]
        for p in ports:
            default = f" (default `{p['default']!r}`)" if "default" in p else ""
            text = str(p["description"]).replace("|", "\\|")
            out.append(f"| `{p['name']}` | {p['type']} | {text}{default} |")
        return out

    parts = [f"# {data['name']}", "", data["summary"], ""]
    if data.get("description"):
        parts += [data["description"].strip(), ""]
    parts += ["## Inputs", "", *rows(data["inputs"]), "", "## Outputs", "", *rows(data["outputs"])]
    parts += ["", "## Example", "", "```python", data["example"].rstrip(), "```", ""]
    return "\n".join(parts)


def source_file(func: Callable[..., Any]) -> str:
    func = inspect.unwrap(func)
    head = f'"""{func.__name__}: published from a notebook with mlfactory."""\n\n'
    head += "from __future__ import annotations\n\n"
    imports = imports_for(func)
    body = "\n".join(imports) + ("\n\n\n" if imports else "\n")
    return head + body + function_source(func)


def scaffold(
    func: Callable[..., Any],
    name: str,
    version: str,
    summary: str,
    folder: str | os.PathLike[str],
    *,
    overwrite: bool = False,
    **details: Any,
) -> Component:
    """Write a component folder for ``func`` and return it loaded and validated.

    ``details`` go to ``describe`` (categories, tags, owners, descriptions, outputs, ...).
    The folder is written next to its target and renamed into place, so a failed check
    leaves nothing behind; an existing non-empty folder is replaced only with ``overwrite``.
    """
    target = Path(folder)
    if target.exists() and any(target.iterdir()) and not overwrite:
        raise FileExistsError(f"{target} is not empty; pass overwrite=True to replace it")
    data = describe(func, name=name, version=version, summary=summary, **details)
    files = {
        "component.yaml": yaml.safe_dump(data, sort_keys=False, allow_unicode=True),
        data["source"]: source_file(func),
        "README.md": readme(data),
    }
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = target.with_name(f".{target.name}.scaffold")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir()
    try:
        for rel, text in files.items():
            (staging / rel).write_text(text, encoding="utf-8")
        try:
            load_component(staging, source="user")
        except InvalidComponent as e:  # name the folder the author asked for, not the staging
            raise InvalidComponent(
                [
                    ComponentError(
                        e_.file.replace(str(staging), str(target)),
                        e_.key,
                        e_.message.replace(staging.name, target.name),
                    )
                    for e_ in e.errors
                ]
            ) from None
        replace_dir(staging, target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return load_component(target, source="user")


def replace_dir(new: Path, target: Path) -> None:
    """Put the folder ``new`` at ``target``; an old ``target`` goes away only once ``new``
    is in place, so a reader sees the old folder or the new one, never neither."""
    target.parent.mkdir(parents=True, exist_ok=True)
    old = None
    if target.exists():
        old = target.with_name(f".old-{secrets.token_hex(4)}-{target.name}")
        target.rename(old)
    new.rename(target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
