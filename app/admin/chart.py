"""Geometry of the dashboard's bar chart; the template turns it into inline SVG.

Drawn on the server so the page needs no JavaScript and no chart library.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

WIDTH, HEIGHT = 720, 260
RIGHT, TOP, BOTTOM = 12, 24, 56
MIN_LEFT = 52
LABEL_EVERY = 5  # days between date labels on the x axis, counted back from the newest day
# The viewBox is scaled to the page; at phone width (about half size) the stylesheet
# draws labels at 22 units instead of 12. Margins are sized for that, the larger case.
LARGEST_FONT = 22
TITLE_BAND = 30  # the rotated "Posts" title, left of the tick labels
TICK_GAP = 8  # from the axis to a tick label


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    day: date
    count: int
    day_label: str  # the day as the page writes it (ISO), once for its bar and its row of the table
    count_label: str  # the count as the page writes it (`count_label`)


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

    @property
    def axis_title_x(self) -> float:
        """The rotated y-axis title's centre line, in the band left of the tick labels."""
        return TITLE_BAND / 2


def count_label(value: int) -> str:
    """Counts with thousands separators: `12,500`, not `12500`."""
    return f"{value:,}"


def label_width(text: str, font_size: float = LARGEST_FONT) -> float:
    """A generous estimate of a label's width (digits are about 0.6 em, separators 0.3 em)."""
    return font_size * sum(0.34 if ch in ",." else 0.66 for ch in text)


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
    step = tick_step(max((count for _, count in series), default=0))
    top_value = step * 4
    y_labels = [count_label(step * i) for i in range(5)]
    # Room for the widest tick label and, left of it, the axis title: neither clipped nor overlapping.
    left = max(MIN_LEFT, math.ceil(TITLE_BAND + max(map(label_width, y_labels)) + TICK_GAP))
    plot_width = WIDTH - left - RIGHT
    plot_height = HEIGHT - TOP - BOTTOM
    baseline = TOP + plot_height
    slot = plot_width / max(len(series), 1)
    gap = min(4.0, slot * 0.2)
    bars = []
    x_ticks = []
    for index, (day, count) in enumerate(series):
        height = plot_height * count / top_value
        x = left + index * slot
        bars.append(
            Bar(
                x=round(x + gap / 2, 2),
                y=round(baseline - height, 2),
                width=round(slot - gap, 2),
                height=round(height, 2),
                day=day,
                count=count,
                day_label=day.isoformat(),
                count_label=count_label(count),
            )
        )
        # Every LABEL_EVERY days back from the newest, so the labels are evenly spaced and the
        # newest day (the one an operator looks for) always has one; the oldest day may not.
        if (len(series) - 1 - index) % LABEL_EVERY:
            continue
        label = f"{day:%b} {day.day}"
        if index == len(series) - 1:  # the newest day's label ends at the plot's edge, not past it
            x_ticks.append(Tick(round(x + slot / 2, 2), label, "end", round(slot / 2, 2)))
        elif x + slot / 2 - label_width(label) / 2 < left:  # too near the y axis to centre: start at it
            x_ticks.append(Tick(round(x + slot / 2, 2), label, "start", round(left - x - slot / 2, 2)))
        else:
            x_ticks.append(Tick(round(x + slot / 2, 2), label))
    y_ticks = [Tick(round(baseline - plot_height * i / 4, 2), label) for i, label in enumerate(y_labels)]
    return BarChart(
        width=WIDTH,
        height=HEIGHT,
        left=left,
        top=TOP,
        right_edge=WIDTH - RIGHT,
        baseline=baseline,
        bars=bars,
        y_ticks=y_ticks,
        x_ticks=x_ticks,
        total=sum(count for _, count in series),
    )
