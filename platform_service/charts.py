"""Server-side SVG charts for the cost dashboard. Pure: data in, markup out.

No JavaScript and no external assets (the hub may have no internet). Every chart is an
``<svg role="img">`` labelled by its ``<title>`` and ``<desc>``, every mark carries a
``<title>`` (a tooltip and what a screen reader reads), and every piece of text that came
from data is escaped here, so callers may mark the result safe.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Callable, Mapping, Sequence

# Tableau 10: distinguishable, and the same order on every chart of the page.
PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#59a14f",
    "#e15759",
    "#76b7b2",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#bab0ac",
)
LEVEL_COLORS = {"ok": "#3a7d44", "warn": "#d48806", "over": "#c0392b"}
FONT = 'font-family="system-ui, -apple-system, Segoe UI, Roboto, sans-serif"'
LABEL_CHARS = 22


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def color(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def money(x: float, unit: str = "") -> str:
    return f"{x:,.2f} {unit}".strip()


def clip(text: str, n: int = LABEL_CHARS) -> str:
    """Shorten before escaping (never cut an entity in half); the full text goes in titles."""
    return text if len(text) <= n else text[: n - 1] + "…"


def nice_max(x: float) -> float:
    """The smallest 1, 2, 2.5 or 5 × 10^k at or above ``x`` (an axis top); 1 for nothing."""
    if not x > 0 or not math.isfinite(x):
        return 1.0
    base = 10 ** math.floor(math.log10(x))
    for step in (1, 2, 2.5, 5, 10):
        if step * base >= x - 1e-12:
            return step * base
    return 10 * base  # pragma: no cover - the loop always returns


def level(fraction: float, thresholds: Sequence[float] = ()) -> str:
    """``over`` from 100%, ``warn`` from the highest threshold below 100% (else 80%)."""
    if fraction >= 1 - 1e-9:
        return "over"
    below = [t for t in thresholds if t < 1]
    return "warn" if fraction >= (max(below) if below else 0.8) - 1e-9 else "ok"


def _safe_id(chart_id: str) -> str:
    return re.sub(r"[^A-Za-z0-9_-]", "-", chart_id) or "chart"


def _open(chart_id: str, w: float, h: float, title: str, desc: str, cls: str) -> str:
    cid = _safe_id(chart_id)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{cid}" class="{cls}" '
        f'viewBox="0 0 {w:g} {h:g}" width="100%" role="img" '
        f'aria-labelledby="{cid}-title {cid}-desc" {FONT} font-size="11">'
        f'<title id="{cid}-title">{esc(title)}</title><desc id="{cid}-desc">{esc(desc)}</desc>'
    )


def _empty(chart_id: str, title: str, w: float, message: str) -> str:
    return (
        _open(chart_id, w, 60, title, message, "mlf-chart mlf-empty")
        + f'<text x="{w / 2:g}" y="34" text-anchor="middle" fill="#6c757d">{esc(message)}</text>'
        + "</svg>"
    )


def _legend(names: Sequence[str], y0: float, w: float, left: float) -> tuple[str, float]:
    """Swatches and names in rows under a chart; returns the markup and its height."""
    item_w, row_h = 150.0, 16.0
    per_row = max(1, int((w - left) // item_w))
    parts = []
    for i, name in enumerate(names):
        x = left + (i % per_row) * item_w
        y = y0 + (i // per_row) * row_h
        parts.append(
            f'<g class="mlf-legend-item"><title>{esc(name)}</title>'
            f'<rect x="{x:g}" y="{y:g}" width="10" height="10" rx="2" fill="{color(i)}"/>'
            f'<text x="{x + 14:g}" y="{y + 9:g}" fill="#212529">{esc(clip(name))}</text></g>'
        )
    rows = math.ceil(len(names) / per_row) if names else 0
    return "".join(parts), rows * row_h


def _axes(
    top: float, x0: float, y0: float, plot_w: float, plot_h: float, unit: str, steps: int = 4
) -> str:
    parts = []
    for k in range(steps + 1):
        v = top * k / steps
        y = y0 + plot_h - plot_h * k / steps
        parts.append(
            f'<line x1="{x0:g}" x2="{x0 + plot_w:g}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{"#adb5bd" if k == 0 else "#e9ecef"}"/>'
            f'<text x="{x0 - 6:g}" y="{y + 3.5:.1f}" text-anchor="end" fill="#6c757d">'
            f"{esc(_short(v))}</text>"
        )
    if unit:
        parts.append(f'<text x="4" y="{y0 - 12:g}" fill="#6c757d">{esc(unit)}</text>')
    return "".join(parts)


def _short(v: float) -> str:
    if v >= 1_000_000:
        return f"{v / 1_000_000:g}M"
    if v >= 10_000:
        return f"{v / 1000:g}k"
    return f"{v:,.2f}".rstrip("0").rstrip(".") if v < 10 else f"{v:,.0f}"


def _x_ticks(
    x_labels: Sequence[str], x0: float, band: float, y: float, fmt: Callable[[str], str]
) -> str:
    every = max(1, math.ceil(len(x_labels) / 12))
    return "".join(
        f'<text x="{x0 + band * (i + 0.5):.1f}" y="{y:g}" text-anchor="middle" '
        f'fill="#6c757d">{esc(fmt(label))}</text>'
        for i, label in enumerate(x_labels)
        if i % every == 0
    )


def _summary(series: Mapping[str, Sequence[float]], unit: str, days: int) -> str:
    totals = sorted(((sum(v), k) for k, v in series.items()), reverse=True)
    total = sum(t for t, _ in totals)
    top = ", ".join(f"{k} {money(t, unit)}" for t, k in totals[:3])
    return f"{money(total, unit)} in total over {days} days; largest: {top}."


def stacked_bars(
    series: Mapping[str, Sequence[float]],
    x_labels: Sequence[str],
    *,
    title: str,
    chart_id: str,
    unit: str = "",
    width: float = 1080,
    height: float = 240,
    tick_label: Callable[[str], str] = str,
) -> str:
    """One bar per x label, stacked by series (use where the series partition the total)."""
    n = len(x_labels)
    if not n or not any(v > 0 for vals in series.values() for v in vals):
        return _empty(chart_id, title, width, "No spend in this period.")
    left, right, top_m = 56.0, 10.0, 24.0
    plot_w, plot_h = width - left - right, height - top_m - 24
    totals = [sum(vals[i] for vals in series.values()) for i in range(n)]
    top = nice_max(max(totals))
    band = plot_w / n
    bar_w = max(1.0, band * 0.72)
    parts = [_axes(top, left, top_m, plot_w, plot_h, unit)]
    for i, day in enumerate(x_labels):
        y = top_m + plot_h
        x = left + band * i + (band - bar_w) / 2
        for j, (name, vals) in enumerate(series.items()):
            v = vals[i]
            if v <= 0:
                continue
            h = plot_h * v / top
            y -= h
            parts.append(
                f'<rect class="mlf-bar" x="{x:.1f}" y="{y:.1f}" width="{bar_w:.1f}" '
                f'height="{max(h, 0.5):.1f}" fill="{color(j)}"><title>'
                f"{esc(day)} · {esc(name)}: {esc(money(v, unit))}</title></rect>"
            )
    parts.append(_x_ticks(x_labels, left, band, top_m + plot_h + 14, tick_label))
    return _with_legend(parts, series, n, chart_id, title, unit, width, height, left)


def _with_legend(
    parts: list[str],
    series: Mapping[str, Sequence[float]],
    days: int,
    chart_id: str,
    title: str,
    unit: str,
    width: float,
    height: float,
    left: float,
) -> str:
    """Close a per-day chart: its legend under the plot, the summary as its description."""
    legend, legend_h = _legend(list(series), height + 4, width, left)
    desc = _summary(series, unit, days)
    return (
        _open(chart_id, width, height + 8 + legend_h, title, desc, "mlf-chart")
        + "".join(parts)
        + legend
        + "</svg>"
    )


def line_chart(
    series: Mapping[str, Sequence[float]],
    x_labels: Sequence[str],
    *,
    title: str,
    chart_id: str,
    unit: str = "",
    width: float = 1080,
    height: float = 240,
    tick_label: Callable[[str], str] = str,
) -> str:
    """One line per series (use where series overlap, e.g. teams sharing a member)."""
    n = len(x_labels)
    if not n or not any(v > 0 for vals in series.values() for v in vals):
        return _empty(chart_id, title, width, "No spend in this period.")
    left, right, top_m = 56.0, 10.0, 24.0
    plot_w, plot_h = width - left - right, height - top_m - 24
    top = nice_max(max(max(vals) for vals in series.values()))
    band = plot_w / n
    parts = [_axes(top, left, top_m, plot_w, plot_h, unit)]
    for j, (name, vals) in enumerate(series.items()):
        pts = [
            (left + band * (i + 0.5), top_m + plot_h - plot_h * v / top) for i, v in enumerate(vals)
        ]
        path = " ".join(f"{x:.1f},{y:.1f}" for x, y in pts)
        dots = "".join(
            f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="{color(j)}"><title>'
            f"{esc(x_labels[i])} · {esc(name)}: {esc(money(vals[i], unit))}</title></circle>"
            for i, (x, y) in enumerate(pts)
        )
        parts.append(
            f'<g class="mlf-series"><title>{esc(name)}</title>'
            f'<polyline points="{path}" fill="none" stroke="{color(j)}" stroke-width="2"/>'
            f"{dots}</g>"
        )
    parts.append(_x_ticks(x_labels, left, band, top_m + plot_h + 14, tick_label))
    return _with_legend(parts, series, n, chart_id, title, unit, width, height, left)


def hbar_chart(
    items: Sequence[tuple[str, float]],
    *,
    title: str,
    chart_id: str,
    unit: str = "",
    suffix: str = "",
    width: float = 480,
    empty: str = "Nothing to show.",
) -> str:
    """Horizontal bars, one per (label, value), in the order given (largest first)."""
    if not items:
        return _empty(chart_id, title, width, empty)
    row_h, label_w, value_w, top_m = 22.0, 120.0, 110.0, 4.0
    bar_max = width - label_w - value_w - 8
    top = max((v for _, v in items), default=0.0) or 1.0
    parts = []
    for i, (label, v) in enumerate(items):
        y = top_m + i * row_h
        w = max(0.0, bar_max * v / top)
        value = money(v, unit) + suffix
        parts.append(
            f'<g class="mlf-hbar"><title>{esc(label)}: {esc(value)}</title>'
            f'<text x="{label_w - 6:g}" y="{y + 14:g}" text-anchor="end" fill="#212529">'
            f"{esc(clip(label, 18))}</text>"
            f'<rect x="{label_w:g}" y="{y + 3:g}" width="{max(w, 1):.1f}" height="{row_h - 6:g}" '
            f'rx="2" fill="{color(0)}"/>'
            f'<text x="{label_w + w + 6:.1f}" y="{y + 14:g}" fill="#495057">{esc(value)}</text></g>'
        )
    h = top_m * 2 + len(items) * row_h
    desc = "; ".join(f"{label}: {money(v, unit)}{suffix}" for label, v in items[:10])
    return _open(chart_id, width, h, title, desc, "mlf-chart") + "".join(parts) + "</svg>"


def progress_bar(
    spent: float,
    amount: float,
    *,
    label: str,
    chart_id: str,
    unit: str = "",
    thresholds: Sequence[float] = (),
    width: float = 400,
    height: float = 18,
) -> str:
    """Spend against a budget: the fill, a mark per threshold, and the 100% line.

    Overspend stretches the scale (up to 2×) so the 100% line stays visible.
    """
    fraction = spent / amount if amount > 0 else (1.0 if spent > 0 else 0.0)
    scale = min(max(1.0, fraction), 2.0)
    fill_w = width * min(fraction, scale) / scale
    cid = _safe_id(chart_id)
    pct = fraction * 100
    text = f"{label}: {money(spent, unit)} of {money(amount, unit)} spent ({pct:.0f}%)"
    marks = "".join(
        f'<line class="mlf-threshold" x1="{width * t / scale:.1f}" x2="{width * t / scale:.1f}" '
        f'y1="0" y2="{height:g}" stroke="#495057" stroke-width="{2 if t >= 1 else 1}" '
        'vector-effect="non-scaling-stroke" '
        f'stroke-dasharray="{"none" if t >= 1 else "2,2"}"><title>{t:.0%}</title></line>'
        for t in sorted(set(thresholds) | {1.0})
        if t <= scale
    )
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{cid}" class="mlf-progress" '
        f'viewBox="0 0 {width:g} {height:g}" width="100%" height="{height:g}" '
        'preserveAspectRatio="none" '
        f'role="progressbar" aria-valuemin="0" aria-valuemax="100" '
        f'aria-valuenow="{min(pct, 100):.0f}" aria-valuetext="{esc(text)}" '
        f'aria-labelledby="{cid}-title">'
        f'<title id="{cid}-title">{esc(text)}</title>'
        f'<rect width="{width:g}" height="{height:g}" rx="4" fill="#e9ecef"/>'
        f'<rect class="mlf-fill" width="{fill_w:.1f}" height="{height:g}" rx="4" '
        f'fill="{LEVEL_COLORS[level(fraction, thresholds)]}"/>'
        f"{marks}</svg>"
    )
