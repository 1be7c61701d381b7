"""Figures that show themselves without pyplot: one PNG each, or all of a set in order."""

from __future__ import annotations

import base64

from mlfactory.components.figures import Figures, ResultFigure, png

PNG = b"\x89PNG\r\n\x1a\n"


def _figure(title: str) -> ResultFigure:
    fig = ResultFigure(figsize=(3, 2))
    fig.add_subplot().set_title(title)
    return fig


def test_result_figure_renders_png_without_pyplot():
    fig = _figure("roc")
    assert fig._repr_png_().startswith(PNG)
    from IPython.core.formatters import DisplayFormatter

    data, _ = DisplayFormatter().format(fig)  # IPython's formatters, as a kernel runs them
    assert data["image/png"].startswith(PNG)


def test_figures_show_each_figure(monkeypatch):
    figures = Figures({"confusion_matrix": _figure("cm"), "roc_curve": _figure("roc")}, title="t")
    assert figures["roc_curve"].axes[0].get_title() == "roc" and figures.roc_curve is not None
    shown: list[tuple[dict, bool]] = []
    import IPython.display

    monkeypatch.setattr(IPython.display, "display", lambda obj, raw: shown.append((obj, raw)))
    figures._ipython_display_()
    assert [raw for _, raw in shown] == [True, True]
    assert [obj["text/plain"].split(":")[0] for obj, _ in shown] == [
        "confusion_matrix",
        "roc_curve",
    ]
    for (obj, _), fig in zip(shown, figures.values(), strict=True):
        assert base64.b64decode(obj["image/png"]) == png(fig)


def test_figures_html_gallery_escapes_names():
    html = Figures({"<b>x</b>": _figure("x")}, title="<t>")._repr_html_()
    assert "<b>" not in html and "&lt;b&gt;x&lt;/b&gt;" in html
    assert html.count('src="data:image/png;base64,') == 1
