"""Small SVG charts drawn on the server (no chart library, nothing inline to run): the template
writes the shapes these functions lay out."""

from __future__ import annotations

from dataclasses import dataclass

PALETTE = ("#0b5f8a", "#e07a1f", "#2e8b57", "#8e44ad", "#c0392b", "#7f8c8d", "#b8860b", "#1abc9c")


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    color: str
    label: str
    value: int


@dataclass(frozen=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    x_labels: list[tuple[float, str]]
    y_max: int
    legend: list[tuple[str, str]]


def grouped_bars(
    labels: list[str], series: dict[str, list[int]], width: int = 560, height: int = 200
) -> Chart:
    """One group per label (e.g. a day), one bar per series (e.g. a spoke) in each group."""
    left, bottom, top = 32, 24, 8
    names = list(series)
    y_max = max([1, *(v for values in series.values() for v in values)])
    group_w = (width - left) / max(1, len(labels))
    bar_w = max(2.0, (group_w - 8) / max(1, len(names)))
    scale = (height - bottom - top) / y_max
    bars = []
    for g, _label in enumerate(labels):
        for s, name in enumerate(names):
            value = series[name][g]
            h = value * scale
            bars.append(
                Bar(
                    left + g * group_w + 4 + s * bar_w,
                    height - bottom - h,
                    bar_w - 1,
                    h,
                    PALETTE[s % len(PALETTE)],
                    name,
                    value,
                )
            )
    x_labels = [(left + g * group_w + group_w / 2, label[5:]) for g, label in enumerate(labels)]
    legend = [(name, PALETTE[i % len(PALETTE)]) for i, name in enumerate(names)]
    return Chart(width, height, bars, x_labels, y_max, legend)


def horizontal_bars(values: dict[str, int], width: int = 360, row: int = 22) -> Chart:
    """One bar per key: counts by status, say."""
    left = 110
    y_max = max([1, *values.values()])
    bars = [
        Bar(
            left,
            i * row + 3,
            (width - left - 40) * v / y_max,
            row - 6,
            PALETTE[i % len(PALETTE)],
            k,
            v,
        )
        for i, (k, v) in enumerate(values.items())
    ]
    return Chart(width, max(row, row * len(values)), bars, [], y_max, [])
