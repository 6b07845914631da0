"""Geometry of the dashboard's bar chart; the template turns it into inline SVG.

Drawn on the server so the page needs no JavaScript and no chart library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 12, 16, 56
LABEL_EVERY = 5  # days between date labels on the x axis


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    count: int


@dataclass(frozen=True)
class Tick:
    position: float
    label: str
    anchor: str = "middle"  # SVG text-anchor
    label_offset: float = 0.0  # from the tick mark to the label's anchor point


@dataclass(frozen=True)
class BarChart:
    width: int
    height: int
    left: int
    top: int
    right_edge: int
    baseline: int
    bars: list[Bar]
    y_ticks: list[Tick]
    x_ticks: list[Tick]
    total: int

    @property
    def plot_middle_x(self) -> float:
        return (self.left + self.right_edge) / 2

    @property
    def plot_middle_y(self) -> float:
        return (self.top + self.baseline) / 2


def tick_step(value: int, ticks: int = 4) -> int:
    """A whole-number step of 1, 2, 2.5 or 5 times a power of ten so that `ticks` steps reach `value`."""
    raw = max(1, math.ceil(value / ticks))
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        step = factor * magnitude
        if step >= raw and step == int(step):
            return int(step)
    return 10 * magnitude


def bar_chart(series: Sequence[tuple[date, int]]) -> BarChart:
    plot_width = WIDTH - LEFT - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    step = tick_step(max((count for _, count in series), default=0))
    top_value = step * 4
    slot = plot_width / max(len(series), 1)
    gap = min(4.0, slot * 0.2)
    bars = []
    x_ticks = []
    for index, (day, count) in enumerate(series):
        height = plot_height * count / top_value
        x = LEFT + index * slot
        bars.append(
            Bar(
                x=round(x + gap / 2, 2),
                y=round(baseline - height, 2),
                width=round(slot - gap, 2),
                height=round(height, 2),
                day=day,
                count=count,
            )
        )
        if index == len(series) - 1:  # the newest day's label ends at the plot's edge, not past it
            x_ticks.append(Tick(round(x + slot / 2, 2), f"{day:%b} {day.day}", "end", round(slot / 2, 2)))
        elif index % LABEL_EVERY == 0 and index < len(series) - LABEL_EVERY:
            x_ticks.append(Tick(round(x + slot / 2, 2), f"{day:%b} {day.day}"))
    y_ticks = [Tick(round(baseline - plot_height * i / 4, 2), str(step * i)) for i in range(5)]
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        left=LEFT,
        top=TOP,
        right_edge=WIDTH - RIGHT,
        baseline=baseline,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        total=sum(count for _, count in series),
    )
