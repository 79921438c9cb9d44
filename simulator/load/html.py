"""The HTML report: one self-contained page (no network, no scripts to fetch).

Charts are inline SVG drawn here: latency percentiles per country (bars), achieved rate
and p99 over time (lines), and a country x region matrix of who served whom (a heat
table). The report's figures (without the histograms) are embedded as JSON in a
``<script type="application/json" id="edgecdn-load-data">`` element, so tools and tests
can read the numbers the charts were drawn from; every chart also carries its series in
``data-*`` attributes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path
from typing import Any

from runtime.files import write_atomically

WIDTH = 760
PERCENTILES = (("p50", "#4c78a8"), ("p90", "#f58518"), ("p99", "#e45756"))
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:900px}
h1{font-size:20px} h2{font-size:16px;margin-top:2em}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left} .axis{stroke:#888} .label{font-size:11px;fill:#444}
"""


def _without_histograms(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_histograms(v) for k, v in value.items() if k != "histogram"}
    if isinstance(value, list):
        return [_without_histograms(v) for v in value]
    return value


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    step = 10.0 ** len(str(int(value))) / 10
    for factor in (1, 2, 2.5, 5, 10):
        if step * factor >= value:
            return step * factor
    return value


def percentile_bars(countries: Mapping[str, Any]) -> str:
    """Grouped horizontal bars: p50/p90/p99 (ms) per country."""
    codes = list(countries)
    row_h, left, top = 3 * 12 + 10, 60, 30
    height = top + row_h * len(codes) + 30
    top_value = _nice_max(max((c["latency_ms"]["p99"] for c in countries.values()), default=0.0))
    scale = (WIDTH - left - 80) / top_value
    series = {code: {p: countries[code]["latency_ms"][p] for p, _ in PERCENTILES} for code in codes}
    svg_open = (
        f'<svg xmlns="http://www.w3.org/2000/svg" id="chart-percentiles" width="{WIDTH}" height="{height}"'
        f" data-series='{escape(json.dumps(series))}'>"
    )
    parts = [svg_open]
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


def line_chart(chart_id: str, points: Sequence[tuple[int, float]], *, unit: str, color: str) -> str:
    """One series over seconds of the run."""
    height, left, bottom, top = 200, 60, 30, 10
    plot_w, plot_h = WIDTH - left - 20, height - top - bottom
    last_x = max((x for x, _ in points), default=1) or 1
    top_value = _nice_max(max((y for _, y in points), default=0.0))

    def xy(x: float, y: float) -> str:
        return f"{left + x / last_x * plot_w:.1f},{top + plot_h - y / top_value * plot_h:.1f}"

    data = [[x, y] for x, y in points]
    parts = [
        (
            f'<svg xmlns="http://www.w3.org/2000/svg" id="{chart_id}" width="{WIDTH}" height="{height}" '
            f"data-series='{escape(json.dumps(data))}'>"
        ),
        f'<line class="axis" x1="{left}" y1="{top + plot_h}" x2="{left + plot_w}" y2="{top + plot_h}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}"/>',
        f'<text class="label" x="4" y="{top + 10}">{top_value:g} {escape(unit)}</text>',
        f'<text class="label" x="4" y="{top + plot_h}">0</text>',
        f'<text class="label" x="{left + plot_w - 40}" y="{height - 8}">{last_x} s</text>',
    ]
    if points:
        path = " ".join(xy(x, y) for x, y in points)
        parts.append(f'<polyline fill="none" stroke="{color}" stroke-width="2" points="{path}"/>')
        parts.extend(
            f'<circle cx="{xy(x, y).split(",")[0]}" cy="{xy(x, y).split(",")[1]}" r="2" fill="{color}">'
            f"<title>{x} s: {y:g} {escape(unit)}</title></circle>"
            for x, y in points
        )
    parts.append("</svg>")
    return "".join(parts)


def region_matrix(report: Mapping[str, Any]) -> str:
    """Country rows x region columns; each cell the share of the country's answers."""
    regions = list(report["regions"])
    rows = []
    for code, c in report["countries"].items():
        cells = []
        for region in regions:
            share = c["served_by"].get(region, 0.0)
            shade = f"rgba(76,120,168,{share:.3f})"
            ink = "#fff" if share > 0.55 else "#222"
            cells.append(
                f'<td style="background:{shade};color:{ink}" data-country="{escape(code)}" '
                f'data-region="{escape(region)}" data-share="{share}">{share:.0%}</td>'
            )
        rows.append(f"<tr><th>{escape(code)}</th>{''.join(cells)}</tr>")
    head = "".join(f"<th>{escape(r)}</th>" for r in regions)
    return f'<table id="matrix"><tr><th>country \\ region</th>{head}</tr>{"".join(rows)}</table>'


def country_rows(report: Mapping[str, Any]) -> str:
    rows = []
    for code, c in report["countries"].items():
        lat = c["latency_ms"]
        kinds = ", ".join(f"{escape(k)} {n}" for k, n in c["errors_by_kind"].items()) or "-"
        rows.append(
            f"<tr><td>{escape(code)}</td><td>{c['requests']:,}</td><td>{c['errors']:,}</td>"
            f"<td>{lat['p50']:.2f}</td><td>{lat['p90']:.2f}</td><td>{lat['p99']:.2f}</td>"
            f"<td>{lat['max']:.2f}</td><td>{kinds}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>"
        for h in ("country", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors by kind")
    )
    return f'<table id="countries"><tr>{head}</tr>{"".join(rows)}</table>'


def render_html(report: Mapping[str, Any]) -> str:
    meta, totals = report["meta"], report["totals"]
    timeline = report["timeline"]
    data = json.dumps(_without_histograms(report)).replace("</", "<\\/")
    title = f"edgecdn load: {meta.get('target', '')}"
    summary = (
        f"{totals['requests']:,} requests in {meta.get('elapsed_s', 0):.1f} s "
        f"({totals['achieved_rps']:,.0f}/s), {totals['errors']:,} errors; "
        f"p50 {totals['latency_ms']['p50']:.2f} ms, p99 {totals['latency_ms']['p99']:.2f} ms; "
        f"{escape(str(meta.get('mode', '')))} loop, {meta.get('workers', 1)} worker(s)"
        + (" — interrupted" if meta.get("interrupted") else "")
    )
    return "\n".join(
        [
            "<!DOCTYPE html>",
            '<html lang="en"><head><meta charset="utf-8">',
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>",
            f'<h1>{escape(title)}</h1><p id="summary">{summary}</p>',
            "<h2>Latency percentiles per country (ms, from the intended send time)</h2>",
            percentile_bars(report["countries"]),
            "<h2>Achieved rate over time (requests/s)</h2>",
            line_chart(
                "chart-rate", [(t["second"], t["requests"]) for t in timeline], unit="req/s", color="#4c78a8"
            ),
            "<h2>p99 latency over time (ms)</h2>",
            line_chart(
                "chart-p99", [(t["second"], t["p99_ms"]) for t in timeline], unit="ms", color="#e45756"
            ),
            "<h2>Who served whom: share of each country's answers by region</h2>",
            region_matrix(report),
            "<h2>Countries</h2>",
            country_rows(report),
            f'<script type="application/json" id="edgecdn-load-data">{data}</script>',
            "</body></html>",
        ]
    )


def write_html(report: Mapping[str, Any], path: Path) -> None:
    write_atomically(path, render_html(report))
