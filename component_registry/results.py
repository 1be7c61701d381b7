"""How component results look in a notebook: a summary and labelled tables for people, the
plain data for code (keys, attributes, ``to_dict()``). Pure: building the HTML and the text
does no I/O. Figures are in ``figures.py`` (it needs matplotlib; this module does not).
"""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from numbers import Integral, Real
from typing import Any

__all__ = ["STYLE", "Result", "Table", "escape", "listing", "number", "score_summary"]

STYLE = (
    "<style>.mlfactory-result table{border-collapse:collapse;margin:.3em 0 .8em}"
    ".mlfactory-result th,.mlfactory-result td{padding:.15em .6em;text-align:right}"
    ".mlfactory-result caption{text-align:left;font-weight:600}"
    ".mlfactory-result .mlfactory-note{opacity:.7;font-size:90%}</style>"
)


def number(value: Any, digits: int = 3) -> str:
    """A value as a person reads it: floats with `digits` decimals (or significant figures
    when very small or large), integers whole, missing values as an en dash."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, Integral):
        return str(int(value))
    if isinstance(value, Real):
        v = float(value)
        if math.isnan(v):
            return "–"
        if v == 0 or 10.0**-digits <= abs(v) < 1e6:
            return f"{v:.{digits}f}"
        return f"{v:.{digits}g}"
    return str(value)


def score_summary(metric: str, mean: float, std: float, folds: int) -> str:
    """``"f1_macro 0.950 ± 0.031 over 5 folds"``."""
    return f"{metric} {number(mean)} ± {number(std)} over {folds} folds"


def listing(values: Iterable[Any], limit: int = 12) -> str:
    """``"a, b, c"``; past `limit` names, ``"a, b, … (+30 more)"``; ``"none"`` when empty."""
    items = [str(v) for v in values]
    if not items:
        return "none"
    if len(items) <= limit:
        return ", ".join(items)
    return f"{', '.join(items[:limit])}, … (+{len(items) - limit} more)"


def escape(value: Any) -> str:
    """Text safe inside HTML elements and attributes (numbers formatted first)."""
    # Labels and column names come from the user's data: always escaped, quotes included.
    return html.escape(value if isinstance(value, str) else number(value), quote=True)


@dataclass(frozen=True)
class Table:
    """A labelled table: ``columns`` head the columns, ``index`` (when given) heads each
    row, ``corner`` says what the two axes are (``"true \\ predicted"``)."""

    caption: str
    columns: Sequence[Any]
    rows: Sequence[Sequence[Any]]
    index: Sequence[Any] | None = None
    corner: str = ""

    def html(self) -> str:
        head = "".join(f"<th>{escape(c)}</th>" for c in self.columns)
        if self.index is not None:
            head = f"<th>{escape(self.corner)}</th>" + head
        body = []
        for i, row in enumerate(self.rows):
            cells = "".join(f"<td>{escape(v)}</td>" for v in row)
            if self.index is not None:
                cells = f"<th>{escape(self.index[i])}</th>" + cells
            body.append(f"<tr>{cells}</tr>")
        return (
            f"<table><caption>{escape(self.caption)}</caption>"
            f"<thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
        )

    def text(self) -> str:
        cells = [[v if isinstance(v, str) else number(v) for v in row] for row in self.rows]
        grid = [[str(c) for c in self.columns], *cells]
        if self.index is not None:
            labels = [self.corner, *(v if isinstance(v, str) else number(v) for v in self.index)]
            grid = [[label, *row] for label, row in zip(labels, grid, strict=True)]
        widths = [max(len(row[k]) for row in grid) for k in range(len(grid[0]))]
        lines = ["  ".join(cell.rjust(widths[k]) for k, cell in enumerate(row)) for row in grid]
        return "\n".join([self.caption, *lines])


def _plain(value: Any) -> Any:
    if isinstance(value, Result):
        return {k: _plain(v) for k, v in value.items()}
    return value


class Result(dict):
    """A component's result: a dict (``result["mean"]``, unchanged for code written against
    the plain dicts), its keys as attributes (``result.mean``), ``to_dict()`` for a plain
    copy, and a readable display in a notebook: a title, summary lines and tables.

    Keys that clash with dict methods (``items``, ``keys``) are reachable by index only.
    """

    def __init__(
        self,
        data: Mapping[str, Any],
        *,
        title: str,
        summary: Iterable[str] = (),
        tables: Iterable[Table] = (),
        notes: Iterable[str] = (),
    ) -> None:
        super().__init__(data)
        # Stored in the instance dict, so attribute lookup finds them before the keys.
        self.__dict__.update(
            _title=title, _summary=list(summary), _tables=list(tables), _notes=list(notes)
        )

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails; dunders stay AttributeErrors so copy and
        # pickle probing (__setstate__, __deepcopy__) behave as for any object.
        if not name.startswith("__") and name in self:
            return self[name]
        raise AttributeError(f"{type(self).__name__} has no attribute or key {name!r}")

    def __dir__(self) -> list[str]:
        return sorted({*super().__dir__(), *(k for k in self if isinstance(k, str))})

    def to_dict(self) -> dict[str, Any]:
        """A plain ``dict`` of the same values (nested results become dicts too)."""
        return {k: _plain(v) for k, v in self.items()}

    @property
    def summary(self) -> str:
        """The summary lines as one text, e.g. ``"f1_macro 0.950 ± 0.031 over 5 folds"``."""
        return "\n".join(self._summary)

    def _fields(self) -> str:
        names = ", ".join(str(k) for k in self)
        return f"Fields (as keys or attributes; .to_dict() for a plain dict): {names}"

    def _repr_html_(self) -> str:
        parts = [f'<div class="mlfactory-result">{STYLE}<strong>{escape(self._title)}</strong>']
        parts += [f"<p>{escape(line)}</p>" for line in self._summary]
        parts += [t.html() for t in self._tables]
        parts += [f'<p class="mlfactory-note">{escape(n)}</p>' for n in self._notes]
        parts.append(f'<p class="mlfactory-note">{escape(self._fields())}</p></div>')
        return "".join(parts)

    def _repr_pretty_(self, p: Any, cycle: bool) -> None:
        if cycle:
            p.text(f"{self._title}(...)")
            return
        p.text(self.text())

    def text(self) -> str:
        """The display as plain text (what a terminal shows)."""
        blocks = [self._title, *self._summary, *(t.text() for t in self._tables), *self._notes]
        return "\n\n".join([*blocks, self._fields()])
