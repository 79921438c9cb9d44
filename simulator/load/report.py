"""The report of a run: a JSON document (every figure, histograms included) and tables.

Schema (``schema`` = ``edgecdn-load-report/1``; keys are only ever added)::

    meta:      target, mode, arrival, phases, workers, started_at, started_ts, elapsed_s,
               interrupted, events_file
    totals:    requests, errors, unanswered, achieved_rps, latency_ms, send_lag_ms
    countries: {CC: {requests, errors, errors_by_kind, statuses, latency_ms, served_by,
                     served_by_requests, versions, version_shares, cache, cache_shares,
                     hit_ratio, histogram}}
    regions:   {REGION: {requests, errors, share, latency_ms, versions, version_shares,
                         cache, cache_shares, hit_ratio, histogram}}
    matrix:    {CC: {REGION: requests}}        (who served whom)
    timeline:  [{second, requests, errors, p50_ms, p99_ms, regions: {REGION: answers},
                 versions: {REGION: {VERSION: answers}}}]
    events:    [{t_s, time, source, kind, target, message, details?}]   (the world's, in the run)

``latency_ms`` holds p50, p90, p99, p99_9, max, mean and min in milliseconds, measured
from each request's intended send time; ``histogram`` is the HDR histogram (microseconds)
in the standard compressed base64 encoding, so reports can be merged or re-analysed.
``cache`` counts answers by ``x-cache`` outcome (HIT, MISS, STALE, REVALIDATED, BYPASS),
``cache_shares`` their shares, ``hit_ratio`` is (HIT + REVALIDATED) / (HIT + REVALIDATED +
MISS + STALE) or null (``simulator.load.cache``); totals carry the three as well.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from rich import box
from rich.console import Console
from rich.table import Table

from runtime.files import write_atomically
from simulator.load.cache import any_cache, cache_table
from simulator.load.cache import figures as cache_figures
from simulator.load.config import LoadConfig
from simulator.load.recorder import Recorder, new_histogram
from simulator.load.versions import add_up, any_app, figures, ordered, summary

SCHEMA = "edgecdn-load-report/1"
HISTOGRAM_ENCODING = {"encoding": "hdrhistogram-v2-compressed-base64", "unit": "us"}


def latency_ms(histogram: HdrHistogram) -> dict[str, float]:
    if histogram.get_total_count() == 0:
        return {"p50": 0.0, "p90": 0.0, "p99": 0.0, "p99_9": 0.0, "max": 0.0, "mean": 0.0, "min": 0.0}

    def at(percentile: float) -> float:
        return round(int(histogram.get_value_at_percentile(percentile)) / 1000, 3)

    return {
        "p50": at(50),
        "p90": at(90),
        "p99": at(99),
        "p99_9": at(99.9),
        "max": round(histogram.get_max_value() / 1000, 3),
        "mean": round(histogram.get_mean_value() / 1000, 3),
        "min": round(histogram.get_min_value() / 1000, 3),
    }


def _histogram(histogram: HdrHistogram) -> dict[str, Any]:
    return {**HISTOGRAM_ENCODING, "data": histogram.encode().decode("ascii")}


def build_report(
    recorder: Recorder, meta: Mapping[str, Any], events: Sequence[Mapping[str, Any]] = ()
) -> dict[str, Any]:
    """Every figure of the run as a JSON-able dict; ``events`` as ``report_events`` makes them."""
    total = new_histogram()
    countries: dict[str, Any] = {}
    for code, stats in sorted(recorder.countries.items()):
        total.add(stats.latency)
        answered = stats.served_by.total()
        countries[code] = {
            "requests": stats.requests,
            "errors": stats.errors.total(),
            "errors_by_kind": dict(sorted(stats.errors.items())),
            "statuses": {str(k): v for k, v in sorted(stats.statuses.items())},
            "latency_ms": latency_ms(stats.latency),
            "served_by": {r: round(n / answered, 6) for r, n in stats.served_by.most_common()}
            if answered
            else {},
            "served_by_requests": dict(stats.served_by.most_common()),
            **figures(stats.versions),  # answers by x-edge-app version, "-" without one
            **cache_figures(stats.cache),
            "histogram": _histogram(stats.latency),
        }
    answered = sum(h.get_total_count() for h in recorder.regions.values()) or 1
    region_versions = recorder.region_versions()
    regions = {
        region: {
            "requests": h.get_total_count(),
            "errors": recorder.region_errors.get(region, 0),
            "share": round(h.get_total_count() / answered, 6),  # of all answers, as served_by
            "latency_ms": latency_ms(h),
            **figures(region_versions.get(region, {})),
            **cache_figures(recorder.region_cache.get(region, {})),
            "histogram": _histogram(h),
        }
        for region, h in sorted(recorder.regions.items())
    }
    timeline = [
        {
            "second": second,
            "requests": tick.requests,
            "errors": tick.errors,
            "p50_ms": latency_ms(tick.latency)["p50"],
            "p99_ms": latency_ms(tick.latency)["p99"],
            "regions": dict(sorted(tick.regions.items())),
            "versions": {region: ordered(tick.versions[region]) for region in sorted(tick.versions)},
        }
        for second, tick in sorted(recorder.timeline.items())
    ]
    requests = recorder.total_requests()
    elapsed = float(meta.get("elapsed_s", 0.0)) or 1.0
    return {
        "schema": SCHEMA,
        "meta": dict(meta),
        "totals": {
            "requests": requests,
            "errors": recorder.total_errors(),
            "unanswered": recorder.unanswered,
            "achieved_rps": round(requests / elapsed, 2),
            "latency_ms": latency_ms(total),
            "histogram": _histogram(total),
            "send_lag_ms": latency_ms(recorder.send_lag),
            **figures(add_up(stats.versions for stats in recorder.countries.values())),
            **cache_figures(add_up(stats.cache for stats in recorder.countries.values())),
        },
        "countries": countries,
        "regions": regions,
        "matrix": {code: dict(c["served_by_requests"]) for code, c in countries.items()},
        "timeline": timeline,
        "events": [dict(event) for event in events],
    }


def write_json(report: Mapping[str, Any], path: Path) -> None:
    write_atomically(path, json.dumps(report, indent=2) + "\n")


def _ms(value: float) -> str:
    return f"{value:,.2f}" if value < 100 else f"{value:,.0f}"


def country_table(report: Mapping[str, Any], *, served_column: bool = True) -> Table:
    meta = report["meta"]
    totals = report["totals"]
    title = (
        f"{meta.get('target', '?')}: {totals['requests']:,} requests in {meta.get('elapsed_s', 0):.1f} s "
        f"({totals['achieved_rps']:,.0f}/s), {totals['errors']:,} errors"
        + (" (interrupted)" if meta.get("interrupted") else "")
    )
    # no vertical rules: the numbers stay whole on an 80-column terminal; the lists fold
    table = Table(title=title, box=box.SIMPLE_HEAD)
    for column in ("country", "requests", "errors", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "country" else "right", no_wrap=True)
    table.add_column("error kinds", overflow="fold", min_width=6)
    if served_column:
        table.add_column("served by", overflow="fold", min_width=8)
    for code, c in report["countries"].items():
        lat = c["latency_ms"]
        kinds = ", ".join(f"{kind} {n:,}" for kind, n in c["errors_by_kind"].items()) or "-"
        served = ", ".join(f"{region} {share:.0%}" for region, share in c["served_by"].items()) or "-"
        table.add_row(
            code,
            f"{c['requests']:,}",
            f"{c['errors']:,}",
            _ms(lat["p50"]),
            _ms(lat["p90"]),
            _ms(lat["p99"]),
            _ms(lat["max"]),
            kinds,
            *([served] if served_column else []),
        )
    lat = totals["latency_ms"]
    table.add_section()
    table.add_row(
        "all",
        f"{totals['requests']:,}",
        f"{totals['errors']:,}",
        _ms(lat["p50"]),
        _ms(lat["p90"]),
        _ms(lat["p99"]),
        _ms(lat["max"]),
        f"unanswered at the end {totals['unanswered']:,}" if totals["unanswered"] else "",
        *([""] if served_column else []),
    )
    return table


def served_table(report: Mapping[str, Any]) -> Table:
    """Who served whom, for terminals too narrow for a served-by column."""
    table = Table(title="share served by each region", box=box.SIMPLE_HEAD)
    table.add_column("country", no_wrap=True)
    table.add_column("served by", overflow="fold")
    for code, c in report["countries"].items():
        table.add_row(
            code, ", ".join(f"{region} {share:.0%}" for region, share in c["served_by"].items()) or "-"
        )
    return table


def region_table(report: Mapping[str, Any]) -> Table:
    table = Table(title="by serving region", box=box.SIMPLE_HEAD)
    for column in ("region", "requests", "errors", "share", "p50 ms", "p90 ms", "p99 ms", "max ms"):
        table.add_column(column, justify="left" if column == "region" else "right", no_wrap=True)
    for region, r in report["regions"].items():
        lat = r["latency_ms"]
        table.add_row(
            region,
            f"{r['requests']:,}",
            f"{r.get('errors', 0):,}",
            f"{r.get('share', 0.0):.0%}",
            _ms(lat["p50"]),
            _ms(lat["p90"]),
            _ms(lat["p99"]),
            _ms(lat["max"]),
        )
    return table


def versions_table(report: Mapping[str, Any]) -> Table:
    """Share of answers by app version (``x-edge-app``), per country and per serving region."""
    table = Table(title="answers by app version (x-edge-app; - without one)", box=box.SIMPLE_HEAD)
    table.add_column("country / region", no_wrap=True)
    table.add_column("answers", justify="right", no_wrap=True)
    table.add_column("app versions", overflow="fold", min_width=12)
    for code, c in report["countries"].items():
        table.add_row(code, f"{sum(c['versions'].values()):,}", summary(c["version_shares"]))
    table.add_section()
    for region, r in report["regions"].items():
        table.add_row(region, f"{sum(r['versions'].values()):,}", summary(r["version_shares"]))
    table.add_section()
    totals = report["totals"]
    table.add_row("all", f"{sum(totals['versions'].values()):,}", summary(totals["version_shares"]))
    return table


def events_table(report: Mapping[str, Any]) -> Table:
    """The world's faults and restarts during the run, at their time into it."""
    table = Table(title="the world's events during the run", box=box.SIMPLE_HEAD)
    for column in ("t s", "source", "kind", "target"):
        table.add_column(column, justify="right" if column == "t s" else "left", no_wrap=True)
    table.add_column("message", overflow="fold")
    for event in report.get("events", []):
        table.add_row(
            f"{event['t_s']:.1f}", event["source"], event["kind"], event["target"], event["message"] or "-"
        )
    return table


LAG_WARNING_MS = 1.0
WIDE_CONSOLE = 110


def print_tables(report: Mapping[str, Any], console: Console) -> None:
    wide = console.width >= WIDE_CONSOLE
    console.print(country_table(report, served_column=wide))
    if not wide:
        console.print(served_table(report))
    if report["regions"]:
        console.print(region_table(report))
    if any_app(report):
        console.print(versions_table(report))
    if any_cache(report):
        console.print(cache_table(report))
    if report.get("events"):
        console.print(events_table(report))
    lag = report["totals"]["send_lag_ms"]
    if lag["p99"] > LAG_WARNING_MS:
        console.print(
            f"[yellow]warning:[/] the generator fell behind its schedule (send lag p99 {lag['p99']:.2f} ms, "
            f"max {lag['max']:.2f} ms): latencies include its own delay; use more --workers or a lower --rate"
        )


def run_meta(
    config: LoadConfig,
    started_at: str,
    elapsed: float,
    *,
    interrupted: bool,
    workers_lost: int,
    started_ts: float | None = None,
) -> dict[str, Any]:
    """The report's ``meta``: what was asked for, and how the run went."""
    plan = config.plan
    return {
        "target": config.target.url,
        "request": {"method": config.request.method, "path": config.request.path},
        "mode": "open" if plan.open_loop else "closed",
        "arrival": plan.arrival if plan.open_loop else None,
        "scenario": dict(plan.meta),
        "phases": [
            {
                "name": p.name,
                "kind": p.kind,
                "duration_s": p.duration_s,
                "rate_start": p.rate_start,
                "rate_end": p.end_rate if p.open_loop else None,
                "concurrency": p.concurrency,
                "mix": p.mix.shares(),
            }
            for p in plan.phases
        ],
        "workers": config.workers,
        "workers_lost": workers_lost,
        "connections": config.connections if plan.open_loop else None,
        "timeout_s": config.timeout_s,
        "started_at": started_at,
        "started_ts": None if started_ts is None else round(started_ts, 6),  # second 0, unix seconds
        "elapsed_s": round(elapsed, 3),
        "interrupted": interrupted,
        "events_file": None if config.events is None else str(config.events),
    }
