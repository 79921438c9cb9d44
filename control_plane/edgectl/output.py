"""How edgectl shows things: rich tables for people, JSON (``-o json``) for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from rich.console import Console
from rich.table import Table

from protos.edgecdn.v1 import apps_pb2, common_pb2, modules_pb2, nodes_pb2

STATUS_NAMES = {
    nodes_pb2.NODE_STATUS_UNSPECIFIED: "unknown",
    nodes_pb2.NODE_STATUS_READY: "ready",
    nodes_pb2.NODE_STATUS_UNREACHABLE: "unreachable",
    nodes_pb2.NODE_STATUS_DISCONNECTED: "disconnected",
}
ABI_NAMES = {
    common_pb2.ABI_UNSPECIFIED: "wagi",
    common_pb2.ABI_WAGI: "wagi",
    common_pb2.ABI_REACTOR: "reactor",
}


def console() -> Console:
    return Console(soft_wrap=True)


def as_dict(message: Message) -> dict[str, Any]:
    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_json(value: object) -> None:
    print(json.dumps(value, indent=2, sort_keys=True))  # noqa: T201 - the CLI's output


def node_dict(node: nodes_pb2.NodeInfo) -> dict[str, Any]:
    return {
        "node_id": node.node_id,
        "region": node.region,
        "pop": node.pop,
        "address": node.address,
        "status": STATUS_NAMES.get(node.status, "unknown"),
        "app": node.app_name,
        "app_version": node.app_version,
        "assignment_version": node.assignment_version,
        "desired_version": node.desired_version,
        "last_heartbeat": node.last_heartbeat.ToJsonString() if node.HasField("last_heartbeat") else None,
        "requests_per_second": node.load.requests_per_second,
        "in_flight": node.load.in_flight,
        "errors_per_second": node.load.errors_per_second,
        "last_error": node.last_error.message if node.HasField("last_error") else None,
    }


def nodes_table(nodes: Sequence[nodes_pb2.NodeInfo]) -> Table:
    table = Table()
    # Ids and addresses are what operators copy: never wrap them; let the rest give way.
    table.add_column("node", no_wrap=True)
    table.add_column("region", overflow="ellipsis", no_wrap=True)
    table.add_column("address", no_wrap=True)
    table.add_column("status")
    table.add_column("app", no_wrap=True)
    table.add_column("rps", justify="right")
    table.add_column("last error", overflow="fold")
    for node in nodes:
        row = node_dict(node)
        app = f"{node.app_name}@{node.app_version}" if node.app_version else "-"
        table.add_row(
            node.node_id,
            node.region,
            node.address,
            row["status"],
            app,
            f"{node.load.requests_per_second:.1f}",
            row["last_error"] or "",
        )
    return table


def modules_table(modules: Sequence[modules_pb2.ModuleInfo]) -> Table:
    table = Table("sha256", "name", "size", "abi", "used by")
    for module in modules:
        table.add_row(
            module.sha256[:16],
            module.name,
            f"{module.size_bytes:,}",
            ABI_NAMES.get(module.abi, "?"),
            ", ".join(module.used_by) or "-",
        )
    return table


def apps_table(apps: Sequence[apps_pb2.AppSummary]) -> Table:
    table = Table("app", "latest", "versions")
    for app in apps:
        table.add_row(app.name, app.latest, ", ".join(app.versions))
    return table


def app_table(app: apps_pb2.AppVersion) -> Table:
    table = Table("route", "target", "module sha256", "memory", title=f"{app.name}@{app.version}")
    modules = {m.name: m for m in app.modules}
    for route in app.routes:
        if route.WhichOneof("target") == "module":
            ref = modules.get(route.module)
            table.add_row(
                route.path,
                f"module {route.module}",
                ref.sha256[:16] if ref else "?",
                f"{ref.memory_bytes:,}" if ref else "",
            )
        else:
            table.add_row(route.path, f"origin {route.origin}", "", "")
    return table
