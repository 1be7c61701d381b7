"""Figures that show themselves in a notebook without pyplot, alone or as a set.

IPython's inline backend registers its PNG formatter only once pyplot is in use, so a
``matplotlib.figure.Figure`` built directly prints as ``<Figure size 600x500 with 1 Axes>``.
"""

from __future__ import annotations

import base64
import io
from collections.abc import Mapping

from matplotlib.figure import Figure

from .results import STYLE, Result, escape

__all__ = ["Figures", "ResultFigure", "png"]


def png(fig: Figure, dpi: int = 100) -> bytes:
    """The figure as PNG bytes, drawn by Agg through ``savefig`` (no pyplot, no GUI)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


class ResultFigure(Figure):
    """A matplotlib Figure that a notebook shows as PNG, with or without pyplot. (With the
    inline backend active, IPython's own formatter for Figure is used instead: one image.)"""

    def _repr_png_(self) -> bytes:
        return png(self)


class Figures(Result):
    """Figures by name (``figures["roc_curve"]``) that, as a cell's value, show every
    figure inline, one image output each, in order."""

    def __init__(self, figures: Mapping[str, Figure], *, title: str) -> None:
        super().__init__(figures, title=title, summary=[", ".join(figures) or "no figures"])

    def _ipython_display_(self) -> None:
        # IPython calls this in place of the formatters; its import is deferred because the
        # class must also work (and be tested) where IPython is not installed.
        from IPython.display import display

        for name, fig in self.items():
            data = base64.b64encode(png(fig)).decode("ascii")
            display({"image/png": data, "text/plain": f"{name}: {fig!r}"}, raw=True)

    def _repr_html_(self) -> str:
        parts = [f'<div class="mlfactory-result">{STYLE}<strong>{escape(self._title)}</strong>']
        for name, fig in self.items():
            data = base64.b64encode(png(fig)).decode("ascii")
            parts.append(
                f"<figure><figcaption>{escape(name)}</figcaption>"
                f'<img alt="{escape(name)}" src="data:image/png;base64,{data}"></figure>'
            )
        parts.append(f'<p class="mlfactory-note">{escape(self._fields())}</p></div>')
        return "".join(parts)
