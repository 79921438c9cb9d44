"""``edgectl traces list|show`` and ``edgectl stats``: read the control plane's trace store."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime

from google.protobuf.duration_pb2 import Duration

from control_plane.edgectl.errors import EdgectlError
from control_plane.edgectl.output import console, print_json, print_table
from control_plane.edgectl.traces_output import (
    span_dict,
    stats_dict,
    stats_notes,
    stats_table,
    summary_dict,
    traces_table,
    waterfall,
)
from cpclient.operator import OperatorClient
from protos.edgecdn.v1 import traces_pb2
from runtime.durations import parse_duration


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], output: list[argparse.ArgumentParser]
) -> None:
    traces = commands.add_parser("traces", help="collected traces").add_subparsers(
        dest="action", required=True
    )
    listing = traces.add_parser("list", help="recent traces, newest first", parents=output)
    listing.add_argument("--region", default="", help="only traces that touched this region")
    listing.add_argument("--service", default="", help="only traces with a span of this service")
    listing.add_argument("--app-version", default="", help="only traces served by this app version")
    listing.add_argument("--errors", action="store_true", help="only traces with a failed span")
    listing.add_argument("--since", default=None, help="only traces started within this long (e.g. 5m)")
    listing.add_argument("--limit", type=int, default=20, help="at most this many")
    show = traces.add_parser("show", help="one trace as a span tree with a timeline", parents=output)
    show.add_argument("trace_id")
    stats = commands.add_parser(
        "stats", help="requests, errors and latency per region and app version", parents=output
    )
    stats.add_argument("--window", default="1m", help="statistics over this long before now (e.g. 30s, 5m)")
    stats.add_argument("--region", default="", help="only this region")
    stats.add_argument("--app", default="", help="only this app name")
    stats.add_argument("--by-route", action="store_true", help="one row per route too")


def _duration(text: str, flag: str) -> Duration:
    try:
        seconds = parse_duration(text)
    except ValueError as exc:
        raise EdgectlError(f"{flag}: {exc}", exit_code=2) from exc
    if seconds <= 0:
        raise EdgectlError(f"{flag}: must be positive", exit_code=2)
    duration = Duration()
    duration.FromNanoseconds(int(seconds * 1e9))
    return duration


async def traces_command(client: OperatorClient, args: argparse.Namespace) -> int:
    if args.action == "show":
        trace = await client.get_trace(args.trace_id.strip().lower())
        if args.output == "json":
            print_json([span_dict(span) for span in trace.spans])
        else:
            print_table(waterfall(trace, wide=args.output == "wide"), wide=args.output == "wide")
        return 0
    if args.limit < 1:
        raise EdgectlError("--limit: must be at least 1", exit_code=2)
    request = traces_pb2.ListTracesRequest(
        region=args.region,
        service=args.service,
        app_version=args.app_version,
        errors_only=args.errors,
        limit=args.limit,
    )
    if args.since is not None:
        request.since.CopyFrom(_duration(args.since, "--since"))
    traces = await client.list_traces(request)
    if args.output == "json":
        print_json([summary_dict(t) for t in traces])
    elif not traces:
        console().print("no traces match")
    else:
        wide = args.output == "wide"
        print_table(traces_table(traces, now=datetime.now(UTC), wide=wide), wide=wide)
    return 0


async def stats_command(client: OperatorClient, args: argparse.Namespace) -> int:
    request = traces_pb2.GetStatsRequest(
        window=_duration(args.window, "--window"),
        region=args.region,
        app_name=args.app,
        by_route=args.by_route,
    )
    response = await client.get_stats(request)
    window_s = response.window.ToNanoseconds() / 1e9
    if args.output == "json":
        print_json([stats_dict(row, window_s) for row in response.rows])
    elif not response.rows:
        console().print(f"no requests in the last {window_s:g} s")
    else:
        wide = args.output == "wide"
        print_table(stats_table(response.rows, window_s, by_route=args.by_route, wide=wide), wide=wide)
        for note in stats_notes(response, by_route=args.by_route):
            console().print(note, highlight=False, markup=False)
    return 0
