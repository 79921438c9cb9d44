"""``edgectl gateways``: see the IoT gateways and command them (GatewayService).

    edgectl gateways list [--region R ...]
    edgectl gateways show ID
    edgectl gateways update-module DIGEST   TARGETS [--timeout 10s]
    edgectl gateways set-interval 5s        TARGETS [--timeout 10s]
    edgectl gateways ping                   TARGETS [--timeout 10s]

TARGETS: ``--gateway ID`` and ``--region R`` (both repeatable; their union), ``--label k=v``
(repeatable; every label must match, narrowing the others or, alone, all gateways), or
``--all``. A command shows a progress bar while results arrive, then one row per gateway;
it exits 1 when any gateway failed or timed out.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from control_plane.edgectl.errors import EdgectlError
from control_plane.edgectl.gateways_output import (
    gateway_dict,
    gateway_table,
    gateways_notes,
    gateways_table,
    result_dict,
    results_table,
)
from control_plane.edgectl.output import console, print_json, print_table
from cpclient.gateways import GatewayClient
from cpclient.operator import OperatorClient
from protos.edgecdn.v1 import common_pb2, gateways_pb2
from runtime.durations import parse_duration

COMMANDS = ("update-module", "set-interval", "ping")


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], output: list[argparse.ArgumentParser]
) -> None:
    gateways = commands.add_parser("gateways", help="IoT gateways: list, show, command").add_subparsers(
        dest="action", required=True
    )
    listing = gateways.add_parser("list", help="every gateway the control plane knows", parents=output)
    listing.add_argument("--region", action="append", default=[], help="only this region (repeatable)")
    gateways.add_parser("show", help="one gateway, every field", parents=output).add_argument("id")
    update = gateways.add_parser(
        "update-module", help="switch gateways to a module by digest", parents=output
    )
    update.add_argument("digest", help="sha256 of a module in the registry (edgectl modules list -o wide)")
    interval = gateways.add_parser("set-interval", help="change the sensor sampling interval", parents=output)
    interval.add_argument("interval", help="e.g. 500ms, 5s, 1m (0.05 s .. 1 h)")
    ping = gateways.add_parser("ping", help="ask gateways to answer and re-announce status", parents=output)
    for parser in (update, interval, ping):
        _add_target_flags(parser)


def _add_target_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gateway", action="append", default=[], metavar="ID", help="a gateway (repeatable)")
    parser.add_argument("--region", action="append", default=[], metavar="R", help="a region (repeatable)")
    parser.add_argument(
        "--label", action="append", default=[], metavar="K=V", help="a label to match (repeatable)"
    )
    parser.add_argument("--all", action="store_true", help="every gateway")
    parser.add_argument("--timeout", default="10s", help="how long to wait for each result (default 10s)")


async def gateways_command(client: OperatorClient, args: argparse.Namespace) -> int:
    gateways = GatewayClient(client)
    if args.action == "list":
        return await _list(gateways, args)
    if args.action == "show":
        return await _show(gateways, args)
    return await _command(gateways, args)


async def _list(client: GatewayClient, args: argparse.Namespace) -> int:
    response = await client.list_gateways(args.region)
    if args.output == "json":
        print_json([gateway_dict(g) for g in response.gateways])
        return 0
    wide = args.output == "wide"
    if not response.gateways:
        console().print(
            "no gateways known yet" + ("" if response.broker_connected else " (broker not connected)")
        )
    else:
        print_table(gateways_table(response.gateways, now=datetime.now(UTC), wide=wide), wide=wide)
    notes = [] if wide else gateways_notes(response.gateways)
    if not response.broker_connected:
        notes.append("the control plane is not connected to the MQTT broker right now")
    refused = sum(response.refused_by_reason.values())
    if refused:
        notes.append(f"{refused} malformed gateway messages refused (reasons: edgectl gateways list -o json)")
    for note in notes:
        console().print(note, highlight=False, markup=False)
    return 0


async def _show(client: GatewayClient, args: argparse.Namespace) -> int:
    response = await client.list_gateways()
    found = [g for g in response.gateways if g.gateway_id == args.id]
    if not found:
        raise EdgectlError(f"gateway {args.id} not found (edgectl gateways list)")
    if args.output == "json":
        print_json(gateway_dict(found[0]))
    else:
        print_table(gateway_table(found[0], now=datetime.now(UTC)))
    return 0


def build_request(args: argparse.Namespace) -> gateways_pb2.GatewayCommandRequest:
    """The request the flags describe; usage errors exit 2 (the server checks the rest)."""
    labels = {}
    for pair in args.label:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise EdgectlError(f"--label {pair!r}: expected KEY=VALUE", exit_code=2)
        labels[key] = value
    if args.all and (args.gateway or args.region):
        raise EdgectlError("--all excludes --gateway and --region", exit_code=2)
    if not (args.all or args.gateway or args.region or labels):
        raise EdgectlError("choose gateways: --gateway ID, --region R, --label K=V or --all", exit_code=2)
    target = common_pb2.Selector(all=args.all, regions=args.region, node_ids=args.gateway)
    request = gateways_pb2.GatewayCommandRequest(target=target, labels=labels)
    request.deadline.FromNanoseconds(round(_seconds(args.timeout, "--timeout") * 1e9))
    if args.action == "update-module":
        request.update_module.sha256 = args.digest.removeprefix("sha256:")
    elif args.action == "set-interval":
        request.set_sample_interval.interval.FromNanoseconds(round(_seconds(args.interval, "interval") * 1e9))
    else:
        request.ping.SetInParent()
    return request


def _seconds(text: str, flag: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise EdgectlError(f"{flag}: {exc}", exit_code=2) from exc


async def _command(client: GatewayClient, args: argparse.Namespace) -> int:
    request = build_request(args)
    command_id, expected, results = "", 0, []
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as bar:
        task = bar.add_task(args.action, total=None, visible=False)
        async for progress in client.stream_command(request):
            if progress.HasField("started"):
                command_id, expected = progress.started.command_id, len(progress.started.gateway_ids)
                # A bar only for many gateways: one answer needs no progress.
                bar.update(
                    task, description=f"{args.action} {command_id}", total=expected, visible=expected > 1
                )
            else:
                results.append(progress.result)
                bar.advance(task)
    order = {gateway_id: i for i, gateway_id in enumerate(sorted(r.gateway_id for r in results))}
    results.sort(key=lambda r: order[r.gateway_id])
    failed = [r for r in results if not r.ok]
    if args.output == "json":
        print_json({"command_id": command_id, "results": [result_dict(r) for r in results]})
    else:
        print_table(results_table(results, wide=args.output == "wide"), wide=args.output == "wide")
    if failed or len(results) < expected:
        timed_out = sum(r.timed_out for r in failed)
        print(  # noqa: T201 - the summary line, on stderr like every edgectl failure
            f"edgectl: {command_id}: {len(failed) - timed_out} of {expected} gateways failed, "
            f"{timed_out} timed out",
            file=sys.stderr,
        )
        return 1
    if args.output != "json":
        console().print(f"{command_id}: {len(results)} of {expected} gateways ok", highlight=False)
    return 0
