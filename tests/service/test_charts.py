"""The dashboard's pure SVG charts: geometry, accessibility and escaping."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import pytest
from mlfactory.service import charts

NS = "{http://www.w3.org/2000/svg}"
EVIL = "<script>alert(\"x\")</script> & 'co'"
DAYS = ["2026-11-01", "2026-11-02", "2026-11-03"]


def parse(svg: str) -> ET.Element:
    root = ET.fromstring(svg)  # noqa: S314 - our own output; fails on an unescaped label
    assert root.tag == f"{NS}svg"
    return root


def titles(root: ET.Element) -> list[str]:
    return [t.text or "" for t in root.iter(f"{NS}title")]


def labelled(root: ET.Element) -> None:
    """role=img (or progressbar) and aria-labelledby pointing at its own title/desc."""
    ids = {el.get("id") for el in root.iter() if el.get("id")}
    refs = root.get("aria-labelledby", "").split()
    assert refs and all(r in ids for r in refs)
    assert root.get("role") in ("img", "progressbar")


@pytest.mark.parametrize(
    ("x", "top"),
    [(0, 1), (-3, 1), (float("nan"), 1), (7, 10), (10, 10), (1.5, 2), (2.1, 2.5), (777, 1000),
     (0.03, 0.05), (4200, 5000)],
)  # fmt: skip
def test_nice_max(x, top):
    assert math.isclose(charts.nice_max(x), top)


@pytest.mark.parametrize(
    ("fraction", "thresholds", "expected"),
    [(0.1, (0.5, 0.8, 1.0), "ok"), (0.79, (0.5, 0.8, 1.0), "ok"), (0.8, (0.5, 0.8, 1.0), "warn"),
     (0.6, (0.5, 1.0), "warn"), (0.79, (), "ok"), (0.85, (), "warn"), (1.0, (0.5,), "over"),
     (7.7, (1.0,), "over")],
)  # fmt: skip
def test_level(fraction, thresholds, expected):
    assert charts.level(fraction, thresholds) == expected


def test_money():
    assert charts.money(1234.5, "USD") == "1,234.50 USD"
    assert charts.money(0.004) == "0.00"


def test_stacked_bars_geometry_and_labels():
    series = {"churn-model": [1.0, 0.0, 3.0], "vision": [1.0, 2.0, 0.0]}
    root = parse(charts.stacked_bars(series, DAYS, title="Daily spend", chart_id="c1", unit="EUR"))
    labelled(root)
    assert root.get("id") == "c1"
    assert titles(root)[0] == "Daily spend"
    bars = [r for r in root.iter(f"{NS}rect") if r.get("class") == "mlf-bar"]
    assert len(bars) == 4  # zero values draw nothing
    # one bar per day, stacked: heights of a day sum to its total on a 0..5 axis (nice_max(3)=5)
    by_x: dict[str, float] = {}
    for r in bars:
        by_x[r.get("x")] = by_x.get(r.get("x"), 0.0) + float(r.get("height"))
    heights = [by_x[x] for x in sorted(by_x, key=float)]
    plot_h = heights[0] / (2 / 5)
    assert [round(h / plot_h * 5, 1) for h in heights] == [2.0, 2.0, 3.0]
    # the second series sits on the first on day 1
    day1 = sorted((r for r in bars if r.get("x") == bars[0].get("x")), key=lambda r: r.get("y"))
    assert [r.get("fill") for r in day1] == [charts.color(1), charts.color(0)]
    tips = titles(root)
    assert "2026-11-03 · churn-model: 3.00 EUR" in tips
    assert "2026-11-02 · vision: 2.00 EUR" in tips
    desc = root.find(f"{NS}desc").text
    assert desc.startswith("7.00 EUR in total over 3 days; largest: churn-model 4.00 EUR")
    legend = [t.text for t in root.iter(f"{NS}text") if t.text in series]
    assert legend == ["churn-model", "vision"]


def test_stacked_bars_empty_says_so():
    for series in ({}, {"a": [0.0, 0.0, 0.0]}):
        root = parse(charts.stacked_bars(series, DAYS, title="T", chart_id="e"))
        labelled(root)
        assert "mlf-empty" in root.get("class")
        assert "No spend in this period." in "".join(root.itertext())
    assert "mlf-empty" in charts.stacked_bars({"a": [1.0]}, [], title="T", chart_id="e")


def test_line_chart_one_line_per_series():
    series = {"data-science": [1.0, 2.0, 3.0], "ml": [0.0, 4.0, 0.0]}
    root = parse(charts.line_chart(series, DAYS, title="Teams", chart_id="t", unit="USD"))
    labelled(root)
    lines = list(root.iter(f"{NS}polyline"))
    assert len(lines) == 2
    points = [tuple(map(float, p.split(","))) for p in lines[1].get("points").split()]
    # the peak (4 on an axis to 5) is highest, zeros sit on the baseline
    assert points[1][1] < points[0][1] == points[2][1]
    assert len(list(root.iter(f"{NS}circle"))) == 6
    assert "2026-11-02 · ml: 4.00 USD" in titles(root)


def test_hbar_chart_proportional_and_ordered():
    items = [("bob", 80.0), ("alice", 20.0)]
    root = parse(charts.hbar_chart(items, title="Top", chart_id="h", unit="USD", suffix="/h"))
    labelled(root)
    rects = list(root.iter(f"{NS}rect"))
    widths = [float(r.get("width")) for r in rects]
    assert math.isclose(widths[0] / widths[1], 4.0, rel_tol=0.01)
    assert titles(root)[1:] == ["bob: 80.00 USD/h", "alice: 20.00 USD/h"]
    empty = parse(charts.hbar_chart([], title="Top", chart_id="h", empty="No servers."))
    assert "No servers." in "".join(empty.itertext())


@pytest.mark.parametrize(
    ("spent", "amount", "fill", "color"),
    [(50, 200, 0.25, "ok"), (170, 200, 0.85, "warn"), (300, 200, 1.0, "over"),
     (1000, 100, 1.0, "over"), (0, 0, 0.0, "ok"), (5, 0, 1.0, "over")],
)  # fmt: skip
def test_progress_bar(spent, amount, fill, color):
    root = parse(
        charts.progress_bar(
            spent, amount, label="group ds", chart_id="b", unit="USD", thresholds=(0.5, 0.8, 1.0)
        )
    )
    labelled(root)
    assert root.get("role") == "progressbar"
    assert 0 <= float(root.get("aria-valuenow")) <= 100
    width = float(root.get("viewBox").split()[2])
    bar = next(r for r in root.iter(f"{NS}rect") if r.get("class") == "mlf-fill")
    assert math.isclose(float(bar.get("width")) / width, fill, abs_tol=0.001)
    assert bar.get("fill") == charts.LEVEL_COLORS[color]
    marks = [m for m in root.iter(f"{NS}line") if m.get("class") == "mlf-threshold"]
    assert [m.find(f"{NS}title").text for m in marks] == ["50%", "80%", "100%"]
    hundred = float(marks[-1].get("x1")) / width
    # over budget the scale stretches (at most 2×) so the 100% mark stays in view
    scale = min(max(1.0, spent / amount if amount else 0), 2.0)
    assert math.isclose(hundred, 1 / scale, abs_tol=0.001)


def test_progress_bar_text():
    root = parse(charts.progress_bar(30, 200, label="user ann", chart_id="b", unit="USD"))
    assert root.get("aria-valuetext") == "user ann: 30.00 USD of 200.00 USD spent (15%)"
    assert root.find(f"{NS}title").text == root.get("aria-valuetext")


def test_every_label_is_escaped():
    outputs = [
        charts.stacked_bars({EVIL: [1.0, 2.0, 0.5]}, [EVIL] * 3, title=EVIL, chart_id=EVIL,
                            unit=EVIL),
        charts.line_chart({EVIL: [1.0, 2.0, 0.5]}, DAYS, title=EVIL, chart_id="x", unit=EVIL),
        charts.hbar_chart([(EVIL, 1.0)], title=EVIL, chart_id="x", unit=EVIL, suffix=EVIL),
        charts.hbar_chart([], title=EVIL, chart_id="x", empty=EVIL),
        charts.progress_bar(1, 2, label=EVIL, chart_id=EVIL, unit=EVIL, thresholds=(0.5,)),
    ]  # fmt: skip
    for svg in outputs:
        assert "<script" not in svg
        root = parse(svg)
        assert all(not el.tag.endswith("script") for el in root.iter())
        text = " ".join(root.itertext()) + " ".join(str(v) for el in root.iter()
                                                    for v in el.attrib.values())  # fmt: skip
        assert EVIL in text  # survives, as text
        assert all(c.isalnum() or c in "-_" for c in root.get("id"))


def test_long_labels_are_cut_before_escaping():
    name = "x" * 17 + "&amp;<>" + "y" * 10  # a cut after escaping would split an entity
    root = parse(charts.hbar_chart([(name, 1.0)], title="T", chart_id="h"))
    shown = [t.text for t in root.iter(f"{NS}text")][0]
    assert shown.endswith("…") and len(shown) == 18
    assert name in titles(root)[-1]
