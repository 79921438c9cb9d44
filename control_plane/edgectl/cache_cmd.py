"""``edgectl cache purge``: drop (or soft-purge) cached responses on the edge and wait for the nodes.

    edgectl cache purge (--url URL ... | --prefix PATH ... | --tag TAG ... | --all)
                        [--regions r1,r2] [--soft] [--timeout 5s] [-o json]

One row per region: nodes done/targeted, entries removed, and the nodes that did not answer
in time; exit 1 when any node was late. The control plane validates the urls, prefixes and
tags (one rule, on the server).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from rich.text import Text

from control_plane.edgectl.errors import EdgectlError
from control_plane.edgectl.output import Cell, Column, as_dict, build_table, console, print_json, print_table
from cpclient.cache import CacheClient
from cpclient.operator import OperatorClient
from protos.edgecdn.v1 import cache_pb2, common_pb2
from runtime.durations import parse_duration


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], output: list[argparse.ArgumentParser]
) -> None:
    cache = commands.add_parser("cache", help="the edge's HTTP cache: purge").add_subparsers(
        dest="action", required=True
    )
    purge = cache.add_parser("purge", help="purge cached responses and wait for the nodes", parents=output)
    purge.add_argument("--url", action="append", default=[], help="a URL or /path?query (repeatable)")
    purge.add_argument("--prefix", action="append", default=[], help="a path prefix, e.g. /img/ (repeatable)")
    purge.add_argument("--tag", action="append", default=[], help="a Cache-Tag / Surrogate-Key (repeatable)")
    purge.add_argument("--all", action="store_true", help="every cached entry")
    purge.add_argument("--regions", default="", help="only these regions, comma-separated (default: all)")
    purge.add_argument("--soft", action="store_true", help="mark stale (revalidate) instead of dropping")
    purge.add_argument("--timeout", default="5s", help="how long to wait for the nodes (default 5s)")


def build_request(args: argparse.Namespace) -> cache_pb2.PurgeCacheRequest:
    """The request the flags describe; usage errors exit 2 (the server checks the values)."""
    if not (args.url or args.prefix or args.tag or args.all):
        raise EdgectlError("choose what to purge: --url, --prefix, --tag or --all", exit_code=2)
    try:
        timeout_s = parse_duration(args.timeout)
    except ValueError as exc:
        raise EdgectlError(f"--timeout: {exc}", exit_code=2) from exc
    regions = [r.strip() for r in args.regions.split(",") if r.strip()]
    return cache_pb2.PurgeCacheRequest(
        target=common_pb2.Selector(regions=regions, all=not regions),
        urls=args.url,
        path_prefixes=args.prefix,
        tags=args.tag,
        everything=args.all,
        soft=args.soft,
        timeout_seconds=timeout_s,
    )


def purge_dict(response: cache_pb2.PurgeCacheResponse) -> dict[str, Any]:
    return as_dict(response)


def purge_table(response: cache_pb2.PurgeCacheResponse, *, wide: bool) -> Any:
    """One row per region: nodes done/targeted, entries, late nodes (which wrap)."""
    columns = [Column(header="REGION"), Column(header="NODES", right=True)]
    columns += [Column(header="ENTRIES", right=True), Column(header="LATE", wrap=True)]
    rows: list[list[Cell]] = []
    for row in response.regions:
        done = f"{row.nodes_done}/{row.nodes_targeted}"
        late = Text(", ".join(row.late_node_ids), style="yellow") if row.late_node_ids else Text("-")
        rows.append([row.region, done, str(row.entries_removed), late])
    return build_table(columns, rows, wide=wide)


async def cache_command(client: OperatorClient, args: argparse.Namespace) -> int:
    request = build_request(args)
    response = await CacheClient(client).purge(request)
    late = sum(len(row.late_node_ids) for row in response.regions)
    if args.output == "json":
        print_json(purge_dict(response))
    elif not response.regions:
        console().print("no node with an open session was selected; nothing purged")
    else:
        print_table(purge_table(response, wide=args.output == "wide"), wide=args.output == "wide")
    if late:
        print(  # noqa: T201 - the summary line, on stderr like every edgectl failure
            f"{late} node(s) did not answer within {request.timeout_seconds:g} s", file=sys.stderr
        )
        return 1
    return 0
