"""Charts as geometry: the templates draw these as inline SVG, so no script runs in the page.

The console's Content-Security-Policy forbids scripts and inline styles; an SVG of ``rect``
elements with classes (coloured by the stylesheet) and ``title`` tooltips needs neither.
Each bar's number is also drawn as text beside it: a tooltip is no use on paper, on a touch
screen or to a reader who does not hover. The decisions chart's stacks are told apart by colour
alone, so its figures are also a table (``Chart.rows``), which the page puts under the chart.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, timedelta

OUTCOMES = ("shared", "shared_override", "not_shared")


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    css: str
    label: str


@dataclass(frozen=True, slots=True)
class Tick:
    x: float
    label: str


@dataclass(frozen=True, slots=True)
class Value:
    """A number drawn on the chart: a day's total above its bar, a count after its bar."""

    x: float
    y: float
    text: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    ticks: tuple[Tick, ...]
    peak: int
    total: int
    legend: tuple[tuple[str, str], ...]  # (css class, label)
    values: tuple[Value, ...] = ()
    # The figures drawn, as a table gives them: (day, its count per legend entry).
    rows: tuple[tuple[date, tuple[int, ...]], ...] = ()


def days_ending(last: date, count: int) -> list[date]:
    return [last - timedelta(days=count - 1 - i) for i in range(count)]


def decisions_chart(
    rows: Sequence[tuple[str, str, int]],
    days: Sequence[date],
    *,
    width: int = 720,
    height: int = 220,
) -> Chart:
    """A stacked bar per day: shared, shared under override, not shared."""
    counts = {(d, o): n for d, o, n in rows}
    plot_h = height - 24  # room for the day labels
    top_margin = 14  # room for the tallest day's total above its bar
    per_day = [[counts.get((d.isoformat(), o), 0) for o in OUTCOMES] for d in days]
    peak = max([sum(c) for c in per_day] + [1])
    slot = width / max(len(days), 1)
    bars: list[Bar] = []
    ticks: list[Tick] = []
    values: list[Value] = []
    for i, (day, stack) in enumerate(zip(days, per_day, strict=True)):
        x = i * slot + slot * 0.15
        top = float(plot_h)
        for outcome, n in zip(OUTCOMES, stack, strict=True):
            if n == 0:
                continue
            h = (plot_h - top_margin) * n / peak
            top -= h
            bars.append(
                Bar(x, top, slot * 0.7, h, f"o-{outcome}", f"{day.isoformat()}: {n} {outcome}")
            )
        if sum(stack):
            values.append(Value(i * slot + slot / 2, top - 3, str(sum(stack))))
        if len(days) <= 16 or i % 2 == 0:
            ticks.append(Tick(i * slot + slot / 2, day.strftime("%d %b")))
    legend = tuple((f"o-{o}", o.replace("_", " ")) for o in OUTCOMES)
    table = tuple((day, tuple(stack)) for day, stack in zip(days, per_day, strict=True))
    return Chart(width, height, tuple(bars), tuple(ticks), peak, sum(map(sum, per_day)), legend,
                 tuple(values), table)  # fmt: skip


def counts_chart(rows: Sequence[tuple[str, int]], *, width: int = 720, row_h: int = 26) -> Chart:
    """Horizontal bars, one per labelled count (quarantine by reason)."""
    peak = max([n for _, n in rows] + [1])
    label_w = 220
    bars = tuple(
        Bar(
            label_w,
            i * row_h + 4,
            (width - label_w - 60) * n / peak,
            row_h - 8,
            "o-quarantine",
            f"{label}: {n}",
        )
        for i, (label, n) in enumerate(rows)
    )
    ticks = tuple(Tick(i * row_h + row_h / 2 + 4, label) for i, (label, _) in enumerate(rows))
    values = tuple(
        Value(bar.x + bar.width + 6, i * row_h + row_h / 2 + 4, str(n))
        for i, (bar, (_, n)) in enumerate(zip(bars, rows, strict=True))
    )
    total = sum(n for _, n in rows)
    return Chart(width, max(len(rows), 1) * row_h, bars, ticks, peak, total, (), values)
