"""Inline SVG charts of the HTML report: percentile bars, and time series with event markers.

Every chart carries what it was drawn from in ``data-*`` attributes (``data-series``,
and ``data-events`` on time charts), so tools and tests read the same numbers the eye
sees. A time chart draws each of the world's events as a vertical line at its time into
the run, dashed for faults (``chaos``) and dotted for the supervisor's exits and
restarts, labelled with kind and target in a band above the plot (labels that would
collide go up a row; past a few rows, the line keeps only its tooltip). ``EventBand``
(the time axis with the events placed on it) and ``legend`` serve every time chart,
including ``version_chart``'s lanes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from html import escape
from typing import Any, Literal

from simulator.load.events import event_label

WIDTH = 760
LEFT, RIGHT = 60, 20
PLOT_H = 150
CHAR_W = 6.3  # average width of an 11px label character: enough to keep labels apart
LABEL_ROW_H = 13
MAX_LABEL_ROWS = 4
HEADROOM = 1.1
LEGEND_ROW_H = 16
MAX_DOTS = 120  # points per series that get a dot (and a tooltip); longer runs get the line only
PERCENTILES = (("p50", "#4c78a8"), ("p90", "#f58518"), ("p99", "#e45756"))
# faults in near-black, so they stand apart from every series colour; the supervisor in purple
EVENT_STYLES = {
    "chaos": ("#222222", "6 3", "fault (chaos)"),
    "supervisor": ("#7b3294", "2 3", "supervisor (exit, restart)"),
}
PALETTE = ("#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#eeca3b", "#9d755d", "#ff9da6")


@dataclass(frozen=True, slots=True, kw_only=True)
class Series:
    """One line of a time chart: a value per second of the run."""

    name: str
    color: str
    points: Sequence[tuple[int, float]]
    dash: str | None = None


def nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10.0 ** len(str(int(value))) / 10
    for factor in (1, 2, 2.5, 5, 10):
        if step * factor >= value:
            return step * factor
    return value


def svg_open(chart_id: str, height: float, **data: Any) -> str:
    attributes = "".join(f" data-{name}='{escape(json.dumps(value))}'" for name, value in data.items())
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" width="{WIDTH}" height="{height:g}"'
        f"{attributes}>"
    )


def percentile_bars(countries: Mapping[str, Any]) -> str:
    """Grouped horizontal bars: p50/p90/p99 (ms) per country."""
    codes = list(countries)
    row_h, left, top = 3 * 12 + 10, 60, 30
    height = top + row_h * len(codes) + 30
    top_value = nice_max(max((c["latency_ms"]["p99"] for c in countries.values()), default=0.0))
    scale = (WIDTH - left - 80) / top_value
    series = {code: {p: countries[code]["latency_ms"][p] for p, _ in PERCENTILES} for code in codes}
    parts = [svg_open("chart-percentiles", height, series=series)]
    for i, (name, color) in enumerate(PERCENTILES):
        parts.append(f'<rect x="{left + i * 70}" y="8" width="10" height="10" fill="{color}"/>')
        parts.append(f'<text class="label" x="{left + i * 70 + 14}" y="17">{name}</text>')
    for row, code in enumerate(codes):
        y = top + row * row_h
        parts.append(f'<text class="label" x="4" y="{y + 20}">{escape(code)}</text>')
        for i, (name, color) in enumerate(PERCENTILES):
            value = series[code][name]
            bar_y, bar_w = y + i * 12, max(value * scale, 1)
            parts.append(
                f'<rect x="{left}" y="{bar_y}" width="{bar_w:.1f}" height="10" fill="{color}">'
                f"<title>{escape(code)} {name} {value:.3f} ms</title></rect>"
            )
            parts.append(f'<text class="label" x="{left + bar_w + 4:.1f}" y="{bar_y + 9}">{value:.2f}</text>')
    axis_y = top + row_h * len(codes)
    parts.append(f'<line class="axis" x1="{left}" y1="{axis_y}" x2="{WIDTH - 80}" y2="{axis_y}"/>')
    parts.append(f'<text class="label" x="{WIDTH - 80}" y="{axis_y + 14}">{top_value:g} ms</text>')
    parts.append("</svg>")
    return "".join(parts)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Label:
    x: float  # the marker's x
    row: int | None  # None: no room, the marker goes without a label
    anchor: str


def _place_labels(xs: Sequence[float], texts: Sequence[str]) -> list[_Label]:
    """Greedy rows: each label goes in the lowest row where it clears the previous one."""
    row_ends: list[float] = []
    placed = []
    for x, text in zip(xs, texts, strict=True):
        width = len(text) * CHAR_W
        anchor, start = ("start", x + 3) if x + 3 + width <= WIDTH - 2 else ("end", x - 3 - width)
        row = next((r for r, end in enumerate(row_ends) if start >= end + 6), None)
        if row is None and len(row_ends) < MAX_LABEL_ROWS:
            row = len(row_ends)
            row_ends.append(0.0)
        if row is not None:
            row_ends[row] = start + width
        placed.append(_Label(x=x, row=row, anchor=anchor))
    return placed


def _ticks(x_end: float) -> list[float]:
    step = next((s for s in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 1800, 3600) if x_end / s <= 8), 7200)
    return [i * step for i in range(int(x_end // step) + 1)]


Swatch = Literal["series", "marker", "area"]
LegendEntry = tuple[str, str, str | None, Swatch]  # name, colour, dash, what it stands for


def legend(entries: Sequence[LegendEntry], y: float) -> tuple[list[str], int]:
    """Swatches with names, wrapped to the chart's width; (parts, rows used)."""
    parts, x, row = [], float(LEFT), 0
    for name, color, dash, swatch in entries:
        width = 22 + len(name) * CHAR_W + 14
        if x + width > WIDTH - RIGHT and x > LEFT:
            x, row = float(LEFT), row + 1
        yy = y + row * LEGEND_ROW_H
        dashing = f' stroke-dasharray="{dash}"' if dash else ""
        weight = 1.5 if swatch == "marker" else 3
        if swatch == "area":
            parts.append(f'<rect x="{x + 2:.1f}" y="{yy - 10}" width="14" height="11" fill="{color}"/>')
        else:
            parts.append(
                f'<line x1="{x:.1f}" y1="{yy - 4}" x2="{x + 18:.1f}" y2="{yy - 4}" stroke="{color}" '
                f'stroke-width="{weight}"{dashing}/>'
            )
        parts.append(f'<text class="label" x="{x + 22:.1f}" y="{yy}">{escape(name)}</text>')
        x += width
    return parts, row + 1 if entries else 0


def _markers(
    events: Sequence[Mapping[str, Any]],
    texts: Sequence[str],
    labels: Sequence[_Label],
    top: int,
    bottom: float,
) -> list[str]:
    """One ``g.event`` per event (its line, with the message as tooltip), then every label:
    labels go last, each on a white box, so that no other marker's line runs through one."""
    lines, names = [], []
    for event, text, label in zip(events, texts, labels, strict=True):
        source = str(event["source"])
        color, dash, _ = EVENT_STYLES.get(source, EVENT_STYLES["chaos"])
        tip = f"{event['t_s']:.1f} s: {text}" + (f" - {event['message']}" if event.get("message") else "")
        y1 = top
        if label.row is not None:
            text_y = top - 4 - label.row * LABEL_ROW_H
            y1 = text_y + 3
            text_x = label.x + 3 if label.anchor == "start" else label.x - 3
            box_x = text_x - 1 if label.anchor == "start" else text_x - len(text) * CHAR_W - 1
            names.append(
                f'<rect class="event-label-box" x="{box_x:.1f}" y="{text_y - 10}" '
                f'width="{len(text) * CHAR_W + 2:.1f}" height="13" fill="#fff" fill-opacity="0.9"/>'
                f'<text class="event-label" x="{text_x:.1f}" y="{text_y}" text-anchor="{label.anchor}" '
                f'fill="{color}" data-t="{event["t_s"]}">{escape(text)}</text>'
            )
        lines.append(
            f'<g class="event event-{escape(source)}" data-t="{event["t_s"]}" data-source="{escape(source)}" '
            f'data-kind="{escape(str(event["kind"]))}"><title>{escape(tip)}</title>'
            f'<line class="marker" x1="{label.x:.1f}" y1="{y1}" x2="{label.x:.1f}" y2="{bottom}" '
            f'stroke="{color}" stroke-width="1.5" stroke-dasharray="{dash}"/></g>'
        )
    return lines + names


@dataclass(frozen=True, slots=True, kw_only=True)
class EventBand:
    """A time chart's x axis and the run's events on it: labels in rows above the plot."""

    events: Sequence[Mapping[str, Any]]  # by time
    texts: Sequence[str]
    labels: Sequence[_Label]
    x_end: float
    top: int  # where the plot starts, below the label rows

    def px(self, t: float) -> float:
        return LEFT + max(0.0, min(t, self.x_end)) / self.x_end * (WIDTH - LEFT - RIGHT)

    def markers(self, bottom: float) -> list[str]:
        """Every event's line down to ``bottom``, then the labels (on top of every line)."""
        return _markers(self.events, self.texts, self.labels, self.top, bottom)

    def x_axis(self, axis_y: float) -> list[str]:
        parts = [f'<line class="axis" x1="{LEFT}" y1="{axis_y}" x2="{WIDTH - RIGHT}" y2="{axis_y}"/>']
        for tick in _ticks(self.x_end):
            x = self.px(tick)
            parts.append(f'<line class="axis" x1="{x:.1f}" y1="{axis_y}" x2="{x:.1f}" y2="{axis_y + 4}"/>')
            parts.append(
                f'<text class="label" x="{x:.1f}" y="{axis_y + 16}" text-anchor="middle">{tick:g} s</text>'
            )
        return parts

    def legend_entries(self) -> list[LegendEntry]:
        """One legend entry per kind of marker drawn."""
        entries: list[LegendEntry] = []
        for source in sorted({str(e["source"]) for e in self.events}):
            color, dash, name = EVENT_STYLES.get(source, EVENT_STYLES["chaos"])
            entries.append((name, color, dash, "marker"))
        return entries

    def data(self) -> list[dict[str, Any]]:
        """What ``data-events`` holds."""
        return [
            {k: e[k] for k in ("t_s", "source", "kind", "target")} | {"label": text}
            for e, text in zip(self.events, self.texts, strict=True)
        ]


def event_band(events: Sequence[Mapping[str, Any]], x_end: float, last_second: int = -1) -> EventBand:
    """Place ``events`` on an axis that ends at ``x_end``, an event's time or ``last_second`` + 1,
    whichever is latest (an event may come during the final drain)."""
    events = sorted(events, key=lambda e: float(e["t_s"]))
    x_end = max([x_end, 1.0, last_second + 1.0, *(float(e["t_s"]) for e in events)])
    plot_w = WIDTH - LEFT - RIGHT
    texts = [event_label(str(e["kind"]), str(e["target"])) for e in events]
    labels = _place_labels(
        [LEFT + max(0.0, min(float(e["t_s"]), x_end)) / x_end * plot_w for e in events], texts
    )
    rows = max((label.row + 1 for label in labels if label.row is not None), default=0)
    top = 10 + (rows * LABEL_ROW_H + 4 if rows else 0)
    return EventBand(events=events, texts=texts, labels=labels, x_end=x_end, top=top)


def time_chart(
    chart_id: str,
    series: Sequence[Series],
    *,
    unit: str,
    x_end: float,
    events: Sequence[Mapping[str, Any]] = (),
    data_series: Any = None,
) -> str:
    """Series over seconds of the run (each second's value at its middle), with event markers.

    ``x_end`` is where the axis ends (the run's length, or later when an event came during
    the final drain); ``data_series`` is what ``data-series`` holds (default: every series'
    points by name).
    """
    band = event_band(events, x_end, max((x for s in series for x, _ in s.points), default=-1))
    top = band.top
    axis_y = top + PLOT_H
    # headroom: a steady rate would otherwise run along the top edge, under the labels
    top_value = nice_max(HEADROOM * max((y for s in series for _, y in s.points), default=0.0))

    def py(value: float) -> float:
        return axis_y - value / top_value * PLOT_H

    entries: list[LegendEntry] = (
        [(s.name, s.color, s.dash, "series") for s in series] if len(series) > 1 else []
    )
    legend_parts, legend_rows = legend(entries + band.legend_entries(), axis_y + 34)
    height = axis_y + 22 + legend_rows * LEGEND_ROW_H + (4 if legend_rows else 0)
    if data_series is None:
        data_series = {s.name: [[x, y] for x, y in s.points] for s in series}
    parts = [svg_open(chart_id, height, series=data_series, events=band.data())]
    parts.extend(band.x_axis(axis_y))
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{top}" x2="{LEFT}" y2="{axis_y}"/>')
    parts.append(f'<text class="label" x="4" y="{top + 10}">{top_value:g} {escape(unit)}</text>')
    parts.append(f'<text class="label" x="4" y="{axis_y}">0</text>')
    for s in series:
        parts.extend(_polyline(s, band.px, py, unit))
    parts.extend(band.markers(axis_y))
    parts.extend(legend_parts)
    parts.append("</svg>")
    return "".join(parts)


def _polyline(
    series: Series, px: Callable[[float], float], py: Callable[[float], float], unit: str
) -> list[str]:
    if not series.points:
        return []
    coords = [(px(x + 0.5), py(y)) for x, y in series.points]
    dashing = f' stroke-dasharray="{series.dash}"' if series.dash else ""
    points = " ".join(f"{x:.1f},{y:.1f}" for x, y in coords)
    line = (
        f'<polyline class="series" data-name="{escape(series.name)}" fill="none" stroke="{series.color}" '
        f'stroke-width="2"{dashing} points="{points}"/>'
    )
    parts = [line]
    if len(coords) <= MAX_DOTS:
        parts.extend(
            f'<circle cx="{cx:.1f}" cy="{cy:.1f}" r="2" fill="{series.color}">'
            f"<title>{escape(series.name)} {x} s: {y:g} {escape(unit)}</title></circle>"
            for (cx, cy), (x, y) in zip(coords, series.points, strict=True)
        )
    return parts
