"""The HTML report: one self-contained page (no network, no scripts to fetch).

The page puts together inline SVG charts (``charts.py``: latency percentiles per country,
achieved rate, p99 and answers by serving region over time; ``version_chart.py``: app
version share over time, one lane per region; each time chart marked with the world's
events), a country x region matrix of who served whom (a heat table), and tables of
regions, countries (both with the share of answers by app version), the HTTP cache's
outcomes and hit ratio per country and region (``cache.py``, when answers carried
``x-cache``) and events. The
report's figures (without the histograms) are embedded as JSON in a ``<script
type="application/json" id="edgecdn-load-data">`` element, so tools and tests can read the
numbers the charts were drawn from; every chart also carries its series (and events) in
``data-*`` attributes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from html import escape
from pathlib import Path
from typing import Any

from runtime.files import write_atomically
from simulator.load.cache import any_cache, cache_section, ratio_text
from simulator.load.charts import EVENT_STYLES, PALETTE, Series, percentile_bars, time_chart
from simulator.load.version_chart import version_share_chart
from simulator.load.versions import any_app, colors, percent

VERSIONS_HEAD = '<th class="versions">app versions</th>'
NO_ANSWER = "no answer"  # requests that failed before any region answered (connect, timeout, ...)
STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222;max-width:900px}
h1{font-size:20px} h2{font-size:16px;margin-top:2em}
table{border-collapse:collapse} td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th:first-child,td:first-child{text-align:left} .axis{stroke:#888} .label{font-size:11px;fill:#444}
.event-label{font-size:11px}
#events td:nth-child(n+2){text-align:left} .note{color:#666;font-size:13px}
td.versions,th.versions{text-align:left} .version{white-space:nowrap}
.swatch{display:inline-block;width:9px;height:9px;margin-right:3px}
"""


def _without_histograms(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _without_histograms(v) for k, v in value.items() if k != "histogram"}
    if isinstance(value, list):
        return [_without_histograms(v) for v in value]
    return value


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


def versions_cell(figures: Mapping[str, Any], palette: Mapping[str, str] | None) -> str:
    """The share of answers by app version, each with its colour on the chart; nothing
    (no column) when no answer of the run carried ``x-edge-app``."""
    if palette is None:
        return ""
    counts, version_shares = figures.get("versions", {}), figures.get("version_shares", {})
    entries = [
        f'<span class="version"><span class="swatch" style="background:{palette.get(name, "#999")}">'
        f"</span>{escape(name)} {percent(share)}</span>"
        for name, share in version_shares.items()
    ]
    return (
        f"<td class=\"versions\" data-versions='{escape(json.dumps(counts))}'>"
        f"{'<br>'.join(entries) or '-'}</td>"
    )


def _palette(report: Mapping[str, Any]) -> dict[str, str] | None:
    return colors(report["totals"]["versions"]) if any_app(report) else None


def country_rows(report: Mapping[str, Any]) -> str:
    palette = _palette(report)
    rows = []
    for code, c in report["countries"].items():
        lat = c["latency_ms"]
        kinds = ", ".join(f"{escape(k)} {n}" for k, n in c["errors_by_kind"].items()) or "-"
        rows.append(
            f'<tr data-country-row="{escape(code)}"><td>{escape(code)}</td><td>{c["requests"]:,}</td>'
            f"<td>{c['errors']:,}</td><td>{lat['p50']:.2f}</td><td>{lat['p90']:.2f}</td>"
            f"<td>{lat['p99']:.2f}</td><td>{lat['max']:.2f}</td><td>{kinds}</td>"
            f"{versions_cell(c, palette)}</tr>"
        )
    heads = ("country", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms", "errors by kind")
    head = "".join(f"<th>{h}</th>" for h in heads) + (VERSIONS_HEAD if palette else "")
    return f'<table id="countries"><tr>{head}</tr>{"".join(rows)}</table>'


def region_rows(report: Mapping[str, Any]) -> str:
    """Per serving region: answers, errors among them, share of all answers, p50/p99, and
    the share of its answers by app version."""
    palette = _palette(report)
    rows = []
    for region, r in report["regions"].items():
        lat = r["latency_ms"]
        rows.append(
            f'<tr data-region-row="{escape(region)}"><td>{escape(region)}</td><td>{r["requests"]:,}</td>'
            f"<td>{r.get('errors', 0):,}</td><td>{r.get('share', 0.0):.1%}</td>"
            f"<td>{lat['p50']:.2f}</td><td>{lat['p99']:.2f}</td><td>{lat['max']:.2f}</td>"
            f"{versions_cell(r, palette)}</tr>"
        )
    failed = _no_answer(report)
    if failed:
        rows.append(
            f'<tr data-region-row="{NO_ANSWER}"><td><i>{NO_ANSWER}</i></td><td>{failed:,}</td>'
            f"<td>{failed:,}</td><td>-</td><td>-</td><td>-</td><td>-</td>"
            + ('<td class="versions">-</td>' if palette else "")
            + "</tr>"
        )
    heads = ("serving region", "answers", "errors", "share", "p50 ms", "p99 ms", "max ms")
    head = "".join(f"<th>{h}</th>" for h in heads) + (VERSIONS_HEAD if palette else "")
    return f'<table id="regions"><tr>{head}</tr>{"".join(rows)}</table>'


def _no_answer(report: Mapping[str, Any]) -> int:
    answered = sum(int(r["requests"]) for r in report["regions"].values())
    return max(0, int(report["totals"]["requests"]) - answered)


def event_rows(report: Mapping[str, Any]) -> str:
    events = report.get("events", [])
    if not events:
        where = report["meta"].get("events_file")
        source = f" in {escape(str(where))}" if where else ""
        return f'<p id="events" class="note">No events{source} during the run.</p>'
    rows = []
    for event in events:
        color = EVENT_STYLES.get(event["source"], EVENT_STYLES["chaos"])[0]
        rows.append(
            f'<tr data-source="{escape(event["source"])}"><td>{event["t_s"]:.1f}</td>'
            f'<td title="{escape(event["time"])}">{escape(_clock(event["time"]))}</td>'
            f'<td style="color:{color}">{escape(event["source"])}</td><td>{escape(event["kind"])}</td>'
            f"<td>{escape(event['target'])}</td><td>{escape(event['message'])}</td></tr>"
        )
    head = "".join(
        f"<th>{h}</th>" for h in ("t (s into the run)", "time (UTC)", "source", "kind", "target", "message")
    )
    return f'<table id="events"><tr>{head}</tr>{"".join(rows)}</table>'


def _clock(iso: str) -> str:
    """``2025-01-02T03:04:05.678+00:00`` -> ``03:04:05.678``: the date is the run's, in the summary."""
    return iso.partition("T")[2].partition("+")[0] or iso


def region_series(report: Mapping[str, Any]) -> list[Series]:
    """Answers per second by serving region, and those that got no answer at all."""
    timeline = report["timeline"]
    series = [
        Series(
            name=region,
            color=PALETTE[i % len(PALETTE)],
            points=[(t["second"], t.get("regions", {}).get(region, 0)) for t in timeline],
        )
        for i, region in enumerate(report["regions"])
    ]
    failed = [(t["second"], t["requests"] - sum(t.get("regions", {}).values())) for t in timeline]
    if any(n for _, n in failed):
        series.append(Series(name=NO_ANSWER, color="#999999", points=failed))
    return series


def time_charts(report: Mapping[str, Any]) -> list[str]:
    """Rate, p99, answers by region and app version share over time, each marked with the events."""
    meta, timeline, events = report["meta"], report["timeline"], report.get("events", [])
    x_end = float(meta.get("elapsed_s") or 0)
    rate = [(t["second"], t["requests"]) for t in timeline]
    p99 = [(t["second"], t["p99_ms"]) for t in timeline]
    regions = region_series(report)
    return [
        "<h2>Achieved rate over time (requests/s)</h2>",
        time_chart(
            "chart-rate",
            [Series(name="requests/s", color="#4c78a8", points=rate)],
            unit="req/s",
            x_end=x_end,
            events=events,
            data_series=[[x, y] for x, y in rate],
        ),
        "<h2>p99 latency over time (ms)</h2>",
        time_chart(
            "chart-p99",
            [Series(name="p99", color="#e45756", points=p99)],
            unit="ms",
            x_end=x_end,
            events=events,
            data_series=[[x, y] for x, y in p99],
        ),
        "<h2>Answers by serving region over time (requests/s)</h2>",
        "<p class=\"note\">A failover shows as one region's line falling while another's rises.</p>",
        time_chart("chart-regions", regions, unit="req/s", x_end=x_end, events=events),
        *version_charts(report),
    ]


def version_charts(report: Mapping[str, Any]) -> list[str]:
    """App version share over time, one lane per serving region (when any answer said)."""
    heading = "<h2>App version share over time, per region (x-edge-app)</h2>"
    palette = _palette(report)
    if palette is None:
        return [
            heading,
            (
                '<p id="no-versions" class="note">No answer carried an <code>x-edge-app</code> header '
                "(no app behind the path, or edge nodes that do not send it).</p>"
            ),
        ]
    note = (
        '<p class="note">Each lane is 100% of the answers its region gave in each second, by the '
        "app version that gave them (<i>-</i>: without the header); blank where the region "
        "answered nothing. A rollout shows as a region's lane changing colour, and a rollback as "
        "it changes back.</p>"
    )
    chart = version_share_chart(
        report["timeline"],
        list(report["regions"]),
        colors=palette,
        x_end=float(report["meta"].get("elapsed_s") or 0),
        events=report.get("events", []),
    )
    return [heading, note, chart]


def render_html(report: Mapping[str, Any]) -> str:
    meta, totals = report["meta"], report["totals"]
    data = json.dumps(_without_histograms(report)).replace("</", "<\\/")
    title = f"edgecdn load: {meta.get('target', '')}"
    events = report.get("events", [])
    summary = (
        f"{totals['requests']:,} requests in {meta.get('elapsed_s', 0):.1f} s "
        f"({totals['achieved_rps']:,.0f}/s), {totals['errors']:,} errors; "
        f"p50 {totals['latency_ms']['p50']:.2f} ms, p99 {totals['latency_ms']['p99']:.2f} ms; "
        f"{escape(str(meta.get('mode', '')))} loop, {meta.get('workers', 1)} worker(s)"
        + (f"; cache hit ratio {ratio_text(totals['hit_ratio']) or '-'}" if any_cache(report) else "")
        + (f"; {len(events)} event(s) in the world" if events else "")
        + (f"; started {escape(str(meta['started_at']))}" if meta.get("started_at") else "")
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
            *time_charts(report),
            "<h2>Events in the world during the run</h2>",
            '<p class="note">Hover a marker on a chart for its event; where markers crowd, only some '
            "are labelled.</p>"
            if report.get("events")
            else "",
            event_rows(report),
            "<h2>Serving regions</h2>",
            region_rows(report),
            "<h2>Who served whom: share of each country's answers by region</h2>",
            region_matrix(report),
            "<h2>Countries</h2>",
            country_rows(report),
            cache_section(report),
            f'<script type="application/json" id="edgecdn-load-data">{data}</script>',
            "</body></html>",
        ]
    )


def write_html(report: Mapping[str, Any], path: Path) -> None:
    write_atomically(path, render_html(report))
