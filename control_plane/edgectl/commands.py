"""What each edgectl command does, given a connected client (I/O is the client and the console)."""

from __future__ import annotations

import argparse
import collections
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from control_plane.edgectl.cache_cmd import cache_command
from control_plane.edgectl.errors import EdgectlError
from control_plane.edgectl.gateways_cmd import gateways_command
from control_plane.edgectl.keys_cmd import signing_key
from control_plane.edgectl.output import (
    STATUS_NAMES,
    app_table,
    apps_table,
    as_dict,
    console,
    modules_table,
    node_dict,
    nodes_notes,
    nodes_table,
    print_json,
    print_table,
)
from control_plane.edgectl.rollout_cmd import rollout_command
from control_plane.edgectl.traces_cmd import stats_command, traces_command
from cpclient import TlsSettings
from cpclient.apps import ABIS
from cpclient.operator import OperatorClient as Client
from cpclient.operator import publish_app
from manifest import OriginPolicy, load_manifest
from protos.edgecdn.v1 import common_pb2, deployments_pb2, modules_pb2
from runtime.cli import split_csv
from runtime.signing import SigningKey

Progress_ = deployments_pb2.NodeProgress


def _err_console() -> Console:
    return Console(stderr=True)


async def run_command(args: argparse.Namespace, *, server: str, token: str, tls: TlsSettings | None) -> int:
    commands: dict[str, Callable[[Client, argparse.Namespace], Awaitable[int]]] = {
        "modules": _modules,
        "apps": _apps,
        "deploy": _deploy,
        "rollout": rollout_command,
        "traces": traces_command,
        "stats": stats_command,
        "nodes": _nodes,
        "status": _status,
        "gateways": gateways_command,
        "cache": cache_command,
    }
    async with Client(server, token, tls) as client:
        return await commands[args.group](client, args)


async def _nodes(client: Client, args: argparse.Namespace) -> int:
    nodes = await client.list_nodes()
    if args.output == "json":
        print_json([node_dict(n) for n in nodes])
    else:
        wide = args.output == "wide"
        print_table(nodes_table(nodes, now=datetime.now(UTC), wide=wide), wide=wide)
        for note in [] if wide else nodes_notes(nodes):
            console().print(note, highlight=False, markup=False)
    return 0


async def _push(
    client: Client, data: bytes, *, name: str, abi: str, sign: SigningKey | None
) -> modules_pb2.ModuleInfo:
    with Progress(
        TextColumn("upload {task.description}"),
        BarColumn(),
        DownloadColumn(),
        console=_err_console(),
        transient=True,
    ) as bar:
        task = bar.add_task(name, total=len(data))
        return await client.push_module(
            data, name=name, abi=ABIS[abi], progress=lambda n: bar.advance(task, n), sign=sign
        )


async def _modules(client: Client, args: argparse.Namespace) -> int:
    action = args.action
    if action == "push":
        key = signing_key(args.sign)
        data = args.file.read_bytes()
        info = await _push(client, data, name=args.name or args.file.stem, abi=args.abi, sign=key)
        if args.output == "json":
            print_json(as_dict(info))
        else:
            signed = f", signed by key {key.key_id}" if key is not None else ""
            text = f"pushed {info.name} sha256:{info.sha256} ({info.size_bytes:,} bytes{signed})"
            console().print(text, highlight=False)
        return 0
    if action == "rm":
        await client.delete_module(args.digest)
        if args.output == "json":
            print_json({"deleted": args.digest})
        else:
            console().print(f"deleted {args.digest}")
        return 0
    modules = await client.list_modules()
    if args.output == "json":
        print_json([as_dict(m) for m in modules])
    else:
        print_table(modules_table(modules, wide=args.output == "wide"), wide=args.output == "wide")
    return 0


async def _apps(client: Client, args: argparse.Namespace) -> int:
    action = args.action
    if action == "register":
        try:
            origins = OriginPolicy.parse(args.allow_origin_network)
        except ValueError as exc:
            raise EdgectlError(f"--allow-origin-network: {exc}", exit_code=2) from exc
        key = signing_key(args.sign)
        manifest = load_manifest(args.manifest, origins=origins)

        async def upload(data: bytes, name: str, abi: str) -> object:
            return await _push(client, data, name=name, abi=abi, sign=key)

        registered = await publish_app(client, manifest, upload=upload, sign=key)
        if args.output == "json":
            print_json(as_dict(registered))
        else:
            console().print(
                f"registered {registered.name}@{registered.version} (digest {registered.digest[:16]})"
            )
        return 0
    if action == "show":
        name, _, version = args.ref.partition("@")
        app = await client.get_app(name, version or None)
        if args.output == "json":
            print_json(as_dict(app))
        else:
            print_table(app_table(app, wide=args.output == "wide"), wide=args.output == "wide")
        return 0
    if action == "rm":
        return await _apps_rm(client, args)
    apps = await client.list_apps()
    if args.output == "json":
        print_json([as_dict(a) for a in apps])
    else:
        print_table(apps_table(apps, wide=args.output == "wide"), wide=args.output == "wide")
    return 0


async def _apps_rm(client: Client, args: argparse.Namespace) -> int:
    name, _, version = args.ref.partition("@")
    if not name or not version:
        raise EdgectlError(f"apps rm needs NAME@VERSION, got {args.ref!r}", exit_code=2)
    removed = await client.remove_app(name, version)
    if args.output == "json":
        print_json(as_dict(removed))
    else:
        modules = ", ".join(digest[:12] for digest in removed.removed_modules)
        console().print(
            f"removed {name}@{version}" + (f" and its unused modules {modules}" if modules else ""),
            highlight=False,
        )
    return 0


def _selector(args: argparse.Namespace) -> common_pb2.Selector:
    if args.all:
        return common_pb2.Selector(all=True)
    if args.regions is not None:
        return common_pb2.Selector(regions=split_csv([args.regions]))
    return common_pb2.Selector(node_ids=split_csv([args.nodes]))


async def _deploy(client: Client, args: argparse.Namespace) -> int:
    name, _, version = args.ref.partition("@")
    if not name or not version:
        raise EdgectlError(f"deploy needs NAME@VERSION, got {args.ref!r}", exit_code=2)
    deployment = await client.deploy(
        name, version, _selector(args), force=args.force, allow_empty=args.allow_empty
    )
    if not args.no_wait and deployment.nodes:
        with Progress(
            TextColumn(f"deployment {deployment.id} {name}@{version}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            console=_err_console(),
            transient=True,
        ) as bar:
            task = bar.add_task("acks", total=len(deployment.nodes))
            async for deployment in client.watch_deployment(deployment.id, args.timeout):  # noqa: B020
                answered = sum(1 for p in deployment.nodes if p.state != Progress_.STATE_PENDING)
                bar.update(task, completed=answered)
    refused = [p for p in deployment.nodes if p.state == Progress_.STATE_NACKED]
    if args.output == "json":
        print_json(as_dict(deployment))
    elif not deployment.nodes:
        console().print(
            f"deployment {deployment.id}: no nodes match yet; nodes that join will get {args.ref}"
        )
    elif args.no_wait:
        console().print(f"deployment {deployment.id}: {args.ref} assigned to {len(deployment.nodes)} nodes")
    else:
        acked = sum(1 for p in deployment.nodes if p.state == Progress_.STATE_ACKED)
        console().print(f"deployment {deployment.id}: {acked}/{len(deployment.nodes)} nodes run {args.ref}")
    if refused:
        first = refused[0]
        raise EdgectlError(
            f"deployment {deployment.id}: {len(refused)} of {len(deployment.nodes)} nodes refused it "
            f"({first.node_id}: {first.error.code}: {first.error.message})"
        )
    return 0


async def _status(client: Client, args: argparse.Namespace) -> int:
    serving = await client.serving()
    nodes = await client.list_nodes()
    apps = await client.list_apps()
    modules = await client.list_modules()
    by_status = collections.Counter(STATUS_NAMES.get(n.status, "unknown") for n in nodes)
    summary = {
        "server": client.server,
        "serving": serving,
        "nodes": dict(sorted(by_status.items())),
        "apps": len(apps),
        "modules": len(modules),
    }
    if args.output == "json":
        print_json(summary)
    else:
        nodes_text = ", ".join(f"{count} {status}" for status, count in summary["nodes"].items()) or "none"  # type: ignore[attr-defined]
        console().print(
            f"control plane {client.server}: {'serving' if serving else 'NOT serving'}\n"
            f"nodes: {nodes_text}\napps: {len(apps)}  modules: {len(modules)}"
        )
    return 0
