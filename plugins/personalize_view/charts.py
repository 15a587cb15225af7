"""Server-side SVG charts for the Personalize view: no JavaScript, no CDN.

Colours are CSS classes (the page's stylesheet maps them to variables that follow light and dark
mode), text is `currentColor`, and every chart carries `<title>` and `<desc>` referenced by
`aria-labelledby`; every point has its own `<title>` (run, version, value, decision).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape

from markupsafe import Markup

WIDTH, HEIGHT = 960, 300
LEFT, RIGHT, TOP, BOTTOM = 64, 44, 16, 44


@dataclass(frozen=True)
class Point:
    x: float  # epoch seconds (time axis) or a run number
    y: float
    title: str
    css: str  # classes, e.g. "point accepted deployed"
    attrs: dict[str, str]


@dataclass(frozen=True)
class Line:
    """A polyline through points (drawn as steps when `step`), or a horizontal rule when one y."""

    label: str
    css: str
    xs: Sequence[float]
    ys: Sequence[float]
    step: bool = False


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        return [low]
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    return [first + i * step for i in range(int((high - first) / step + 1e-9) + 1)]


def _time_ticks(low: float, high: float, count: int = 6) -> list[tuple[float, str]]:
    if high <= low:
        return [(low, _day(low))]
    step = (high - low) / count
    return [(low + i * step, _day(low + i * step)) for i in range(count + 1)]


def _day(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d")


def chart(
    *,
    chart_id: str,
    title: str,
    desc: str,
    y_label: str,
    points: Sequence[Point],
    lines: Sequence[Line] = (),
    time_axis: bool = True,
    y_min: float | None = 0.0,
) -> Markup:
    """An SVG scatter/line chart; empty data gives a chart that says so."""
    xs = [p.x for p in points] + [x for line in lines for x in line.xs]
    ys = [p.y for p in points] + [y for line in lines for y in line.ys]
    ys = [y for y in ys if y is not None and not math.isnan(y)]
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
        f'aria-labelledby="{escape(chart_id)}-title {escape(chart_id)}-desc" '
        'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">',
        f'<title id="{escape(chart_id)}-title">{escape(title)}</title>',
        f'<desc id="{escape(chart_id)}-desc">{escape(desc)}</desc>',
    ]
    if not xs or not ys:
        parts.append(
            f'<text x="{WIDTH / 2}" y="{HEIGHT / 2}" text-anchor="middle" class="empty">no data yet</text></svg>'
        )
        return Markup("".join(parts))
    x_low, x_high = min(xs), max(xs)
    if x_low == x_high:
        x_low, x_high = x_low - 1, x_high + 1
    y_low = min(ys) if y_min is None else min(y_min, min(ys))
    y_high = max(ys)
    pad = (y_high - y_low) * 0.08 or 0.01
    y_high += pad
    if y_min is None:
        y_low -= pad
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def sx(x: float) -> float:
        return LEFT + (x - x_low) / (x_high - x_low) * plot_w

    def sy(y: float) -> float:
        return TOP + plot_h - (y - y_low) / (y_high - y_low) * plot_h

    parts.append('<g class="axes" aria-hidden="true">')
    for tick in _ticks(y_low, y_high):
        parts.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{sy(tick):.1f}" y2="{sy(tick):.1f}"/>'
            f'<text x="{LEFT - 6}" y="{sy(tick) + 4:.1f}" text-anchor="end">{tick:.3g}</text>'
        )
    x_ticks = (
        _time_ticks(x_low, x_high)
        if time_axis
        else [(t, f"{t:g}") for t in _ticks(x_low, x_high) if t == int(t)]
    )
    for tick, label in x_ticks:
        parts.append(
            f'<line class="tick" x1="{sx(tick):.1f}" x2="{sx(tick):.1f}" y1="{TOP + plot_h}" y2="{TOP + plot_h + 4}"/>'
            f'<text x="{sx(tick):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{escape(label)}</text>'
        )
    parts.append(
        f'<line class="axis" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{TOP + plot_h}" y2="{TOP + plot_h}"/>'
        f'<line class="axis" x1="{LEFT}" x2="{LEFT}" y1="{TOP}" y2="{TOP + plot_h}"/>'
        f'<text x="14" y="{TOP + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 14 {TOP + plot_h / 2})">{escape(y_label)}</text>'
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 6}" text-anchor="middle">'
        f"{'training run recorded (UTC)' if time_axis else 'training run'}</text>"
    )
    parts.append("</g>")
    for line in lines:
        coords = [
            (x, y) for x, y in zip(line.xs, line.ys, strict=True) if y is not None and not math.isnan(y)
        ]
        if not coords:
            continue
        if line.step:
            stepped = [coords[0]]
            for x, y in coords[1:]:
                stepped += [(x, stepped[-1][1]), (x, y)]
            coords = stepped
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in coords)
        parts.append(
            f'<polyline class="{escape(line.css)}" fill="none" points="{path}">'
            f"<title>{escape(line.label)}</title></polyline>"
        )
    for point in points:
        attrs = "".join(f' data-{escape(k)}="{escape(v)}"' for k, v in point.attrs.items())
        parts.append(
            f'<circle class="{escape(point.css)}" cx="{sx(point.x):.1f}" cy="{sy(point.y):.1f}" r="4.5"{attrs}>'
            f"<title>{escape(point.title)}</title></circle>"
        )
    parts.append("</svg>")
    return Markup("".join(parts))
