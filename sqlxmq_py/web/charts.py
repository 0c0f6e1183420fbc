"""Inline SVG bar charts of the runners' per-minute counts (pure functions, no JavaScript)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from html import escape

from ..admin import StatsBucket

__all__ = ["SERIES_COLOURS", "Bin", "bar_chart", "bin_buckets"]

SERIES_COLOURS = {"completed": "#2e9d5b", "retried": "#e0a526", "failed": "#d64545"}
"""Bar colours per series (also used by the legend in ``style.css``)."""

MAX_BARS = 120


@dataclass(frozen=True)
class Bin:
    """Finished attempts in ``[start, start + width)``."""

    start: datetime
    width: timedelta
    completed: int = 0
    retried: int = 0
    failed: int = 0

    def get(self, series: str) -> int:
        """The count of one series: completed, retried or failed."""
        return int(getattr(self, series))


def bin_buckets(buckets: Sequence[StatsBucket], since: datetime, minutes: int) -> list[Bin]:
    """Groups per-minute buckets into at most ``MAX_BARS`` equal bins from ``since``, with
    empty bins for minutes nobody reported."""
    step = max(1, math.ceil(minutes / MAX_BARS))
    width = timedelta(minutes=step)
    count = math.ceil(minutes / step)
    totals = [[0, 0, 0] for _ in range(count)]
    for bucket in buckets:
        index = int((bucket.minute - since).total_seconds() // 60) // step
        if 0 <= index < count:
            totals[index][0] += bucket.completed
            totals[index][1] += bucket.retried
            totals[index][2] += bucket.failed
    return [
        Bin(since + width * i, width, completed=c, retried=r, failed=f)
        for i, (c, r, f) in enumerate(totals)
    ]


def _nice_ceiling(value: int) -> int:
    if value <= 1:
        return 1
    magnitude = int("1" + "0" * (len(str(value)) - 1))
    for factor in (1, 2, 5, 10):
        if value <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude  # pragma: no cover - the loop always returns


def _fmt(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def bar_chart(
    bins: Sequence[Bin],
    series: Sequence[str],
    *,
    label: str,
    width: int = 1000,
    height: int = 180,
) -> str:
    """An SVG of stacked bars (``series`` from the bottom up); every text is escaped."""
    left, right, top, bottom = 44, 8, 10, 22
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = max((sum(b.get(s) for s in series) for b in bins), default=0)
    scale_max = _nice_ceiling(peak)
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">',
        f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = top + plot_h * (1 - fraction)
        value = scale_max * fraction
        parts.append(
            f'<line x1="{left}" y1="{_fmt(y)}" x2="{width - right}" y2="{_fmt(y)}" '
            f'stroke="#d9dde3" stroke-width="1"/>'
        )
        shown = _fmt(value) if value != int(value) else str(int(value))
        parts.append(
            f'<text x="{left - 6}" y="{_fmt(y + 4)}" text-anchor="end" font-size="11" '
            f'fill="#5b6470">{shown}</text>'
        )
    if bins:
        bar_w = plot_w / len(bins)
        gap = bar_w * 0.15 if bar_w > 3 else 0.0
        for index, item in enumerate(bins):
            x = left + index * bar_w + gap / 2
            base = float(top + plot_h)
            for name in series:
                count = item.get(name)
                if count <= 0:
                    continue
                h = plot_h * count / scale_max
                base -= h
                tip = f"{item.start:%Y-%m-%d %H:%M} UTC: {count} {name}"
                parts.append(
                    f'<rect class="bar bar-{escape(name)}" x="{_fmt(x)}" y="{_fmt(base)}" '
                    f'width="{_fmt(max(bar_w - gap, 0.5))}" height="{_fmt(h)}" '
                    f'fill="{SERIES_COLOURS[name]}"><title>{escape(tip)}</title></rect>'
                )
        for index in sorted({0, len(bins) // 2, len(bins) - 1}):
            x = left + index * bar_w + bar_w / 2
            anchor = "start" if index == 0 else "end" if index == len(bins) - 1 else "middle"
            if index == 0:
                x = left
            elif index == len(bins) - 1:
                x = width - right
            parts.append(
                f'<text x="{_fmt(x)}" y="{height - 6}" text-anchor="{anchor}" font-size="11" '
                f'fill="#5b6470">{bins[index].start:%H:%M}</text>'
            )
    if peak == 0:
        parts.append(
            f'<text x="{left + plot_w / 2:.0f}" y="{top + plot_h / 2:.0f}" text-anchor="middle" '
            f'font-size="13" fill="#8a929c">No finished attempts in this period</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
