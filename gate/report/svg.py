"""The timeline drawn as inline SVG: no script, no font or image to fetch; each bar carries a
<title> (the browser's tooltip) and `data-kind` / `data-state` for the tests."""

from __future__ import annotations

import math
from html import escape

from gate.report.timeline import Bar, Lane, Tick, Timeline

WIDTH = 1100
LABEL_W = 100
LANE_H = 26
AXIS_H = 22
MIN_BAR = 2.0


def draw(timeline: Timeline) -> str:
    lanes = [lane for lane in timeline.lanes if lane.bars or lane.ticks]
    height = AXIS_H + LANE_H * len(lanes) + 4
    parts = [
        f'<svg class="timeline" xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" '
        f'height="{height}" viewBox="0 0 {WIDTH} {height}" role="img" '
        'aria-label="the run on one time axis">'
    ]
    parts += _axis(timeline, height)
    for row, lane in enumerate(lanes):
        parts += _lane(timeline, lane, AXIS_H + row * LANE_H)
    parts.append("</svg>")
    return "\n".join(parts)


def _x(timeline: Timeline, at: float) -> float:
    share = (at - timeline.start) / timeline.span
    return LABEL_W + max(0.0, min(1.0, share)) * (WIDTH - LABEL_W - 10)


def _axis(timeline: Timeline, height: int) -> list[str]:
    """Gridlines at a round step giving 5-10 intervals, labelled in seconds from the start."""
    step = _round_step(timeline.span)
    parts = []
    n = 0
    while n * step <= timeline.span + 1e-9:
        x = _x(timeline, timeline.start + n * step)
        parts.append(
            f'<line class="grid" x1="{x:.1f}" y1="{AXIS_H - 4}" x2="{x:.1f}" y2="{height}"/>'
        )
        parts.append(f'<text class="axis" x="{x:.1f}" y="12">{_seconds(n * step)}</text>')
        n += 1
    return parts


def _round_step(span: float) -> float:
    raw = span / 8
    power = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1.0
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def _seconds(value: float) -> str:
    if value >= 120:
        return f"{value / 60:.0f}m{value % 60:02.0f}s" if value % 60 else f"{value / 60:.0f}m"
    return f"{value:.3g}s"


def _lane(timeline: Timeline, lane: Lane, top: int) -> list[str]:
    parts = [
        f'<g class="lane" data-lane="{escape(lane.name)}">',
        f'<text class="lane-name" x="4" y="{top + 17}">{escape(lane.name)}</text>',
    ]
    parts += [_bar(timeline, bar, top) for bar in lane.bars]
    parts += [_tick(timeline, tick, top) for tick in lane.ticks]
    parts.append("</g>")
    return parts


def _bar(timeline: Timeline, bar: Bar, top: int) -> str:
    x = _x(timeline, bar.start)
    width = max(MIN_BAR, _x(timeline, bar.end) - x)
    took = bar.end - bar.start
    title = f"{bar.label} ({took:.2f}s from {bar.start - timeline.start:.2f}s)"
    title += f": {bar.detail}" if bar.detail else ""
    label = ""
    if width > 7 * len(bar.label) + 6:
        label = f'<text class="bar-label" x="{x + 3:.1f}" y="{top + 16}">{escape(bar.label)}</text>'
    return (
        f'<g class="bar {bar.kind} {bar.state}" data-kind="{bar.kind}" data-state="{bar.state}" '
        f'data-label="{escape(bar.label)}"><title>{escape(title)}</title>'
        f'<rect x="{x:.1f}" y="{top + 4}" width="{width:.1f}" height="{LANE_H - 8}" rx="2"/>'
        f"{label}</g>"
    )


def _tick(timeline: Timeline, tick: Tick, top: int) -> str:
    x = _x(timeline, tick.at)
    title = f"{tick.label} (at {tick.at - timeline.start:.2f}s)"
    return (
        f'<g class="tick {tick.kind} {tick.state}" data-kind="{tick.kind}"><title>'
        f'{escape(title)}</title><line x1="{x:.1f}" y1="{top + 2}" x2="{x:.1f}" '
        f'y2="{top + LANE_H - 2}"/></g>'
    )
