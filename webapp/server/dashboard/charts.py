"""Line charts drawn on the server as SVG: the geometry (scales, nice ticks, the path) here,
the markup in templates/stats/_chart.html (axes labelled with several ticks, a `<title>`
and `<desc>`, and the same numbers as a table for screen readers and for copying).
Colours come from the stylesheet's variables, so a chart follows light and dark."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

WIDTH = 600
HEIGHT = 180
LEFT = 56  # room for the value ticks
BOTTOM = 28  # room for the time ticks
TOP = 10
RIGHT = 12
VALUE_TICKS = 5
TIME_TICKS = 6


@dataclass(frozen=True)
class Tick:
    at: float  # the SVG coordinate
    label: str


@dataclass(frozen=True)
class Line:
    name: str  # "p95"
    css: str  # the stylesheet's class for its colour and dash
    path: str  # the SVG path data; gaps where there is no value
    dots: list[tuple[float, float, str]]  # x, y, the point's title


@dataclass(frozen=True)
class Chart:
    key: str  # the ids in the page: chart-KEY
    title: str
    unit: str  # the value axis' title
    description: str
    lines: list[Line]
    value_ticks: list[Tick]
    time_ticks: list[Tick]
    rows: list[tuple[str, list[str]]]  # the table: time label, one value per line
    empty: bool

    width: int = WIDTH
    height: int = HEIGHT
    left: int = LEFT
    top: int = TOP
    bottom: int = HEIGHT - BOTTOM
    right: int = WIDTH - RIGHT


def nice_step(span: float, ticks: int) -> float:
    """A step of 1, 2, 2.5 or 5 times a power of ten that covers `span` in about `ticks` steps."""
    raw = span / max(1, ticks - 1)
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 2.5, 5, 10):
        if factor * power >= raw:
            return factor * power
    return 10 * power


def line_chart(
    key: str,
    title: str,
    unit: str,
    description: str,
    starts: Sequence[datetime],
    series: dict[str, tuple[str, Sequence[float | None]]],
    *,
    time_format: str,
    value_label: Callable[[float], str],
    minimum_top: float = 1.0,
) -> Chart:
    """A chart of the named `series` (name → (css class, values per start)) over `starts`."""
    values = [v for _, points in series.values() for v in points if v is not None]
    top_value = max([*values, minimum_top])
    step = nice_step(top_value, VALUE_TICKS)
    top_value = step * math.ceil(top_value / step)
    plot_w, plot_h = WIDTH - RIGHT - LEFT, HEIGHT - BOTTOM - TOP
    count = len(starts)

    def x(index: int) -> float:
        return round(LEFT + (index + 0.5) * plot_w / max(1, count), 1)

    def y(value: float) -> float:
        return round(TOP + plot_h - value / top_value * plot_h, 1)

    lines = []
    for name, (css, points) in series.items():
        path: list[str] = []
        dots = []
        pen_down = False
        for index, value in enumerate(points):
            if value is None:
                pen_down = False
                continue
            path.append(f"{'L' if pen_down else 'M'}{x(index)},{y(value)}")
            pen_down = True
            dots.append((x(index), y(value), f"{starts[index].strftime(time_format)}: {name} {value_label(value)}"))
        lines.append(Line(name, css, " ".join(path), dots))
    ticks = round(top_value / step)
    value_ticks = [Tick(y(step * i), value_label(step * i)) for i in range(ticks + 1)]
    every = max(1, math.ceil(count / TIME_TICKS))
    time_ticks = [Tick(x(i), starts[i].strftime(time_format)) for i in range(0, count, every)]
    rows = [
        (start.strftime(time_format), [_cell(points[i], value_label) for _, points in series.values()])
        for i, start in enumerate(starts)
    ]
    return Chart(key, title, unit, description, lines, value_ticks, time_ticks, rows, empty=not any(values))


def _cell(value: float | None, label: Callable[[float], str]) -> str:
    return "—" if value is None else label(value)
