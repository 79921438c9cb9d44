"""The chart "app version share over time, per region": one lane per serving region.

Each lane is a stacked band, 0-100% of that region's answers in each second, coloured by
the app version that gave them (``x-edge-app``; ``-`` without one). A second's shares are
drawn across the whole second (steps, not slopes), so a rollout's first answers and a
rollback's last ones stay in their second; seconds in which a region answered nothing are
left blank. The lanes share one time axis and the world's events (vertical lines across
every lane, labelled once above the first), so a rollout and its rollback are read
against the faults and restarts around them.

The ``svg`` carries what it was drawn from: ``data-series`` is
``{region: {version: [[second, answers], ...]}}`` (seconds with answers of that version),
and ``data-events`` the markers, as on the other time charts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from html import escape
from typing import Any

from simulator.load.charts import (
    CHAR_W,
    LEFT,
    LEGEND_ROW_H,
    RIGHT,
    WIDTH,
    EventBand,
    LegendEntry,
    event_band,
    legend,
    svg_open,
)
from simulator.load.recorder import NO_VERSION
from simulator.load.versions import add_up, shares, summary

CHART_ID = "chart-versions"
LANE_H = 44
CAPTION_H = 16
LANE_GAP = 10
LANE_BACKGROUND = "#ffffff"  # what shows through in seconds without answers: nothing
LANE_BORDER = "#bbbbbb"
LEGEND_NAMES = {NO_VERSION: "- (no x-edge-app)"}

Seconds = Mapping[int, Mapping[str, int]]  # second -> {version: answers}


def lanes_of(timeline: Sequence[Mapping[str, Any]], regions: Sequence[str]) -> dict[str, dict[int, Any]]:
    """The report's ``timeline[].versions`` regrouped: region -> second -> {version: answers}."""
    lanes: dict[str, dict[int, Any]] = {region: {} for region in regions}
    for tick in timeline:
        for region, counts in tick.get("versions", {}).items():
            if region in lanes and counts:
                lanes[region][int(tick["second"])] = counts
    return lanes


def version_share_chart(
    timeline: Sequence[Mapping[str, Any]],
    regions: Sequence[str],
    *,
    colors: Mapping[str, str],
    x_end: float,
    events: Sequence[Mapping[str, Any]] = (),
) -> str:
    """One lane per region in ``regions``; ``colors`` gives every version (in stacking order)."""
    lanes = lanes_of(timeline, regions)
    band = event_band(events, x_end, max((int(t["second"]) for t in timeline), default=-1))
    areas, captions = [], []
    y = float(band.top)
    for region, seconds in lanes.items():
        captions.append(_caption(region, seconds, y))
        lane_top = y + CAPTION_H
        areas.extend(_lane(region, seconds, colors, band, lane_top))
        y = lane_top + LANE_H + LANE_GAP
    axis_y = y - LANE_GAP
    entries: list[LegendEntry] = [
        (LEGEND_NAMES.get(name, name), color, None, "area") for name, color in colors.items()
    ]
    legend_parts, legend_rows = legend(entries + band.legend_entries(), axis_y + 34)
    height = axis_y + 22 + legend_rows * LEGEND_ROW_H + 4
    series = {
        region: {
            version: [[second, counts[version]] for second, counts in seconds.items() if counts.get(version)]
            for version in colors
            if any(counts.get(version) for counts in seconds.values())
        }
        for region, seconds in lanes.items()
    }
    parts = [svg_open(CHART_ID, height, series=series, events=band.data()), *areas]
    parts.extend(band.x_axis(axis_y))
    parts.extend(band.markers(axis_y))
    parts.extend(captions)  # over the markers' lines, so the region names stay readable
    parts.extend(legend_parts)
    parts.append("</svg>")
    return "".join(parts)


def _caption(region: str, seconds: Seconds, y: float) -> str:
    counts = add_up(seconds.values())
    text = f"{region}: {sum(counts.values()):,} answers, {summary(shares(counts))}"
    room = int((WIDTH - LEFT - RIGHT) / CHAR_W)
    if len(text) > room:
        text = text[: room - 1] + "…"
    baseline = y + CAPTION_H - 4
    return (  # on a white box: an event's line must not run through the region's name
        f'<rect x="{LEFT - 1}" y="{baseline - 10:g}" width="{len(text) * CHAR_W + 2:.1f}" height="13" '
        f'fill="#fff" fill-opacity="0.9"/>'
        f'<text class="lane-caption label" x="{LEFT}" y="{baseline:g}" '
        f'data-region="{escape(region)}">{escape(text)}</text>'
    )


def _lane(region: str, seconds: Seconds, colors: Mapping[str, str], band: EventBand, top: float) -> list[str]:
    """The lane's frame and one ``path.share`` per version: its band of each second's answers."""
    bottom = top + LANE_H

    def py(share: float) -> float:
        return bottom - share * LANE_H

    parts = [
        (
            f'<g class="lane" data-region="{escape(region)}">'
            f'<rect x="{LEFT}" y="{top:g}" width="{WIDTH - LEFT - RIGHT}" height="{LANE_H}" '
            f'fill="{LANE_BACKGROUND}" stroke="{LANE_BORDER}" stroke-width="0.5"/>'
        ),
        f'<text class="label" x="4" y="{top + 9:g}">100%</text>',
        f'<text class="label" x="4" y="{bottom:g}">0</text>',
    ]
    totals = {second: sum(counts.values()) for second, counts in seconds.items()}
    below = dict.fromkeys(seconds, 0.0)  # the share stacked so far, per second
    ordered = sorted(seconds)
    for version, color in colors.items():
        answers = sum(counts.get(version, 0) for counts in seconds.values())
        if not answers:
            continue
        subpaths = []
        # only the seconds in which this version answered: a band of zero height is no band
        for run in _runs([s for s in ordered if seconds[s].get(version)]):
            lows = [below[s] for s in run]
            highs = [below[s] + seconds[s][version] / totals[s] for s in run]
            subpaths.append(_band_path(run, lows, highs, band.px, py))
            below.update(zip(run, highs, strict=True))
        parts.append(
            f'<path class="share" data-region="{escape(region)}" data-version="{escape(version)}" '
            f'fill="{color}" d="{" ".join(subpaths)}"><title>{escape(region)}: {escape(version)}, '
            f"{answers:,} answers</title></path>"
        )
    parts.append(f'<line class="axis" x1="{LEFT}" y1="{top:g}" x2="{LEFT}" y2="{bottom:g}"/></g>')
    return parts


def _runs(seconds: Sequence[int]) -> list[list[int]]:
    """Consecutive seconds together: where a version (or the region) gave no answer, a gap."""
    runs: list[list[int]] = []
    for second in seconds:
        if runs and runs[-1][-1] == second - 1:
            runs[-1].append(second)
        else:
            runs.append([second])
    return runs


def _steps(run: Sequence[int], values: Sequence[float]) -> list[tuple[float, float]]:
    """Vertices of a step line over ``run``: each value held across its second, equal
    neighbours merged (a steady hour of 100% is two points, not 7,200)."""
    points: list[tuple[float, float]] = []
    i = 0
    while i < len(run):
        j = i
        while j + 1 < len(run) and values[j + 1] == values[i]:
            j += 1
        points.extend(((run[i], values[i]), (run[j] + 1, values[i])))
        i = j + 1
    return points


def _band_path(
    run: Sequence[int],
    lows: Sequence[float],
    highs: Sequence[float],
    px: Callable[[float], float],
    py: Callable[[float], float],
) -> str:
    """A closed outline: along the top of the band, then back along its bottom."""
    outline = _steps(run, highs) + _steps(run, lows)[::-1]
    return "M" + " L".join(f"{px(t):.1f},{py(v):.1f}" for t, v in outline) + " Z"
