"""The code of the notebook cell the components panel inserts for one component version.

Pure: from a `Component` to text. The cell pins the exact version, names each input (its
default, or ``...`` and the description where one is required), assigns the outputs and,
when there is one, ends with it so that running the cell shows the result.
"""

from __future__ import annotations

import ast
import keyword
import math
from typing import Any

from .spec import Component

_MAX_COMMENT = 200


def comment_text(text: str, limit: int = _MAX_COMMENT) -> str:
    """`text` on one line, safe after ``#``: every kind of line break and control character
    becomes a space, runs of spaces collapse, and long text is cut with an ellipsis."""
    cleaned = "".join(ch if ch.isprintable() else " " for ch in text)
    one_line = " ".join(cleaned.split())
    return one_line if len(one_line) <= limit else one_line[: limit - 1].rstrip() + "…"


def identifier(name: str, *, rename_keywords: bool = False) -> str:
    """`name` if Python accepts it as a variable; keywords get a trailing ``_`` when asked."""
    if not name.isidentifier() or name == "__debug__":
        raise ValueError(f"{name!r} is not a Python identifier")
    if keyword.iskeyword(name):
        if not rename_keywords:
            raise ValueError(f"{name!r} is a Python keyword")
        return name + "_"
    return name


def literal(value: Any) -> str | None:
    """Python source for a default value, or None when it has no safe literal form."""
    if isinstance(value, float) and not math.isfinite(value):
        return f"float({str(value)!r})"
    text = repr(value)
    try:
        same = ast.literal_eval(text) == value
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return text if same else None


def snippet(component: Component) -> str:
    """The cell's code: a comment naming the version, the pinned import, inputs, the call."""
    c = component
    fn = identifier(c.name)
    inputs = [(p, identifier(p.name)) for p in c.inputs]
    if any(var == fn for _, var in inputs):
        fn = f"{fn}_component"  # an input of the same name must not replace the function
    head = comment_text(f"{c.name} {c.version} ({c.source}, {c.stability}): {c.summary}", limit=400)
    lines = [
        f"# {head}",
        "from mlfactory.components import use",
        "",
        f'{fn} = use("{c.name}@{c.version}")',
    ]
    for port, var in inputs:
        value = literal(port.default) if port.has_default else None
        note = comment_text(port.description)
        if port.has_default and value is not None:
            lines.append(f"{var} = {value}")
        elif port.has_default:
            lines.append(f"{var} = ...  # default {comment_text(repr(port.default), 80)}: {note}")
        else:
            lines.append(f"{var} = ...  # required ({port.type}): {note}")
    args = ", ".join(f"{port.name}={var}" for port, var in inputs)
    call = f"{fn}({args})"
    outs = [identifier(p.name, rename_keywords=True) for p in c.outputs]
    if outs:
        call = f"{', '.join(outs)} = {call}"
    lines.append(call)
    if len(outs) == 1:  # the cell's value: its rich display (summary, tables, figures) shows
        lines.append(outs[0])
    code = "\n".join(lines) + "\n"
    compile(code, f"<{c.ref}>", "exec")  # a cell that does not parse is a bug here, not later
    return code
