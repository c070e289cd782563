"""Small SVG charts of the DORA figures, as geometry for a template (no script needed):
deployments per day (succeeded and failed stacked) and the lead time of each change.

Every chart also has its numbers as text next to it (and a `<title>` per bar), so the
figures never depend on seeing the picture.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from shipline.observe.dora import Figures
from shipline.server.web.status import duration

__all__ = ["Bar", "Chart", "deployments_chart", "lead_time_chart", "unit_of"]

WIDTH = 560
HEIGHT = 140
PAD_LEFT = 36
PAD_BOTTOM = 22
PAD_TOP = 8


@dataclass(frozen=True, slots=True)
class Bar:
    """One rectangle: `css` picks its colour (with the legend's word for it)."""

    x: float
    y: float
    width: float
    height: float
    css: str
    title: str


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: tuple[Bar, ...]
    # (y, label) of the value axis, and (x, label) of the time axis.
    ticks: tuple[tuple[float, str], ...]
    labels: tuple[tuple[float, str], ...]
    baseline: float


def _scale(top: float) -> tuple[float, tuple[float, ...]]:
    """A round upper bound of the axis and its tick values."""
    if top <= 0:
        return 1.0, (0.0, 1.0)
    for step in (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000, 50000):
        if top / step <= 4:
            upper = step * -(-top // step)
            return upper, tuple(step * n for n in range(int(upper // step) + 1))
    return top, (0.0, top)


def deployments_chart(found: Figures) -> Chart:
    """A bar per day of the window: successful deployments, failed ones on top."""
    days = found.days
    plot_w = WIDTH - PAD_LEFT - 4
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    base = PAD_TOP + plot_h
    upper, ticks = _scale(max((d.succeeded + d.failed for d in days), default=0))
    slot = plot_w / max(1, len(days))
    bars: list[Bar] = []
    labels: list[tuple[float, str]] = []
    every = max(1, len(days) // 6)
    for n, day in enumerate(days):
        x = PAD_LEFT + n * slot + slot * 0.15
        width = max(1.0, slot * 0.7)
        ok_h = plot_h * day.succeeded / upper
        bad_h = plot_h * day.failed / upper
        when = day.day.isoformat()
        if day.succeeded:
            bars.append(
                Bar(x, base - ok_h, width, ok_h, "ok", f"{when}: {day.succeeded} succeeded")
            )
        if day.failed:
            bars.append(
                Bar(x, base - ok_h - bad_h, width, bad_h, "bad", f"{when}: {day.failed} failed")
            )
        if n % every == 0 and n < len(days) - every // 2:
            labels.append((x + width / 2, day.day.strftime("%m-%d")))
    return Chart(
        WIDTH,
        HEIGHT,
        tuple(bars),
        tuple((base - plot_h * t / upper, f"{t:g}") for t in ticks),
        tuple(labels),
        base,
    )


UNITS = (("d", timedelta(days=1)), ("h", timedelta(hours=1)), ("min", timedelta(minutes=1)))


def unit_of(longest: timedelta) -> tuple[str, timedelta]:
    """The unit a chart of lengths up to `longest` is drawn in (days, hours, minutes or
    seconds), so that the longest bar is at least about one unit."""
    for name, size in UNITS:
        if longest >= size:
            return name, size
    return "s", timedelta(seconds=1)


def lead_time_chart(found: Figures) -> Chart:
    """A bar per successful change, oldest first: its lead time, in the unit that suits
    the longest one (`lead_time_unit`)."""
    times = found.lead_times[-60:]
    plot_w = WIDTH - PAD_LEFT - 4
    plot_h = HEIGHT - PAD_BOTTOM - PAD_TOP
    base = PAD_TOP + plot_h
    unit, size = unit_of(max(times, default=timedelta(0)))
    hours = [t / size for t in times]
    upper, ticks = _scale(max(hours, default=0.0))
    slot = plot_w / max(1, len(times))
    bars = tuple(
        Bar(
            PAD_LEFT + n * slot + slot * 0.15,
            base - plot_h * h / upper,
            max(1.0, slot * 0.7),
            plot_h * h / upper,
            "lead",
            f"change {n + 1}: {duration(t.total_seconds())}",
        )
        for n, (h, t) in enumerate(zip(hours, times, strict=True))
    )
    return Chart(
        WIDTH,
        HEIGHT,
        bars,
        tuple((base - plot_h * t / upper, f"{t:g} {unit}") for t in ticks),
        (),
        base,
    )
