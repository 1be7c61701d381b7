"""How a ``Prediction`` looks in a notebook: a short text summary and an HTML table.

Pure: takes the prediction's description and its first records, returns strings. Labels come
from whoever declared the model and values from the model, so every one is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from html import escape
from typing import Any

TEXT_ROWS = 5
HTML_ROWS = 20
# per-label columns (probabilities.<label>) shown before the rest are summed up as "…"
MAX_LABEL_COLUMNS = 10
MAX_CELL_CHARS = 60


def caption(
    *,
    model_name: str,
    model_version: str,
    model_alias: str | None,
    task: str,
    decision_rule: str,
    thresholds: dict[str, float] | None,
    rows: int,
) -> str:
    """One line: which model and version, the task and the rule that made the labels."""
    version = f"v{model_version}" if model_version.isdigit() else f"({model_version})"
    version += f" ({model_alias})" if model_alias else ""
    rule = decision_rule
    if thresholds:
        shown = [f"{k} ≥ {_number(v)}" for k, v in list(thresholds.items())[:3]]
        rule += f" ({', '.join(shown)}{', …' if len(thresholds) > 3 else ''})"
    return f"{model_name} {version}: {task}, {rule}, {rows} row{'s' * (rows != 1)}"


def table(
    records: Sequence[dict[str, Any]], label_names: Sequence[str]
) -> tuple[list[str], list[list[str]]]:
    """Column headers and cell texts; per-label dicts spread into ``name.label`` columns (as
    ``to_pandas`` does), cut at ``MAX_LABEL_COLUMNS`` labels with a closing "…" column."""
    headers: list[str] = []
    getters: list[Any] = []
    first = records[0] if records else {}
    for name, value in first.items():
        if isinstance(value, dict):
            keys = list(value)
            for key in keys[:MAX_LABEL_COLUMNS]:
                headers.append(f"{name}.{key}")
                getters.append(lambda r, n=name, k=key: r[n].get(k))
            if len(keys) > MAX_LABEL_COLUMNS:
                headers.append(f"{name}.… (+{len(keys) - MAX_LABEL_COLUMNS})")
                getters.append(lambda r: "…")
        else:
            headers.append(name)
            getters.append(lambda r, n=name: r.get(n))
    cells = [[_cell(get(r)) for get in getters] for r in records]
    return headers, cells


def to_text(title: str, headers: list[str], cells: list[list[str]], rows: int) -> str:
    """``Prediction(<caption>)`` and an aligned table of the first ``TEXT_ROWS`` rows."""
    lines = [f"Prediction({title})"]
    if headers:
        index = [str(i) for i in range(len(cells))]
        cols = [[""] + index] + [[h] + [row[j] for row in cells] for j, h in enumerate(headers)]
        widths = [max(len(v) for v in col) for col in cols]
        for i in range(len(cells) + 1):
            line = "  ".join(col[i].ljust(w) for col, w in zip(cols, widths, strict=True))
            lines.append(line.rstrip())
    if rows > len(cells):
        lines.append(f"… {rows - len(cells)} more row{'s' * (rows - len(cells) != 1)}")
    return "\n".join(lines)


def to_html(title: str, headers: list[str], cells: list[list[str]], rows: int) -> str:
    """A table with the caption, headers and the first ``HTML_ROWS`` rows, all escaped."""
    head = "".join(f"<th>{escape(h)}</th>" for h in headers)
    body = [
        f"<tr><th>{i}</th>" + "".join(f"<td>{escape(c)}</td>" for c in row) + "</tr>"
        for i, row in enumerate(cells)
    ]
    if rows > len(cells):
        more = rows - len(cells)
        body.append(
            f'<tr><td colspan="{len(headers) + 1}">… {more} more row{"s" * (more != 1)}'
            " (<code>.to_pandas()</code> has them all)</td></tr>"
        )
    return (
        '<table class="mlfactory-prediction">'
        f'<caption style="text-align: left">{escape(title)}</caption>'
        f"<thead><tr><th></th>{head}</tr></thead>"
        f"<tbody>{''.join(body)}</tbody></table>"
    )


def _number(v: float) -> str:
    return f"{v:.4g}"


def _cell(v: Any) -> str:
    if v is None:
        text = ""
    elif isinstance(v, bool):
        text = str(v)
    elif isinstance(v, float):
        text = _number(v)
    elif isinstance(v, (list, tuple)):
        text = ", ".join(_cell(x) for x in v)
    else:
        text = str(v)
    return text if len(text) <= MAX_CELL_CHARS else text[: MAX_CELL_CHARS - 1] + "…"
