"""How edgectl shows things: JSON (``-o json``) for scripts, and for people tables that fit an
80-column terminal (``-o table``) or show every column unabbreviated whatever the width
(``-o wide``, as kubectl does).

A table never cuts an id or a figure: those columns keep their whole width, only free text
(names, versions, routes, messages) wraps, and secondary columns are in ``-o wide`` only.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Literal

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message
from google.protobuf.timestamp_pb2 import Timestamp
from rich.cells import cell_len
from rich.console import Console, ConsoleRenderable
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from cpclient.apps import ABI_NAMES
from protos.edgecdn.v1 import apps_pb2, modules_pb2, nodes_pb2

Output = Literal["table", "wide", "json"]
OUTPUTS: Final[tuple[Output, ...]] = ("table", "wide", "json")
SHORT_DIGEST: Final = 16  # hex digits of a sha256 a narrow table shows (-o wide: all 64)
_WIDE_LIMIT: Final = 10_000  # the width a table is measured at (its natural width is less)

STATUS_NAMES = {
    nodes_pb2.NODE_STATUS_UNSPECIFIED: "unknown",
    nodes_pb2.NODE_STATUS_READY: "ready",
    nodes_pb2.NODE_STATUS_UNREACHABLE: "unreachable",
    nodes_pb2.NODE_STATUS_DISCONNECTED: "disconnected",
}

Cell = str | Text | ConsoleRenderable  # any other renderable only in a ``wrap`` column


@dataclass(frozen=True, slots=True, kw_only=True)
class Column:
    """One column: ``wrap`` for free text that may wrap and fold; any other column (ids,
    figures, states, times) is always shown whole."""

    header: str
    wrap: bool = False
    right: bool = False


def console() -> Console:
    return Console(soft_wrap=True)


def build_table(
    columns: Sequence[Column], rows: Iterable[Sequence[Cell]], *, wide: bool, title: str | None = None
) -> Table:
    """A borderless table (kubectl's look). Columns that are not ``wrap`` get their widest
    cell as their minimum width, so rich narrows only the free text; with ``wide`` nothing
    wraps at all."""
    texts = [[Text(cell) if isinstance(cell, str) else cell for cell in row] for row in rows]
    table = Table(box=None, pad_edge=False, title=title, title_justify="left", title_style="bold")
    for index, column in enumerate(columns):
        whole = wide or not column.wrap
        widest = max((_width(row[index]) for row in texts), default=0)
        table.add_column(
            column.header,
            justify="right" if column.right else "left",
            no_wrap=whole,
            overflow="fold",
            min_width=max(widest, cell_len(column.header)) if whole else None,
        )
    for row in texts:
        table.add_row(*row)
    return table


def _width(cell: Text | ConsoleRenderable) -> int:
    if not isinstance(cell, Text):
        return 0
    return max((cell_len(line) for line in cell.plain.splitlines()), default=0)


def print_table(table: Table, *, wide: bool = False) -> None:
    """Print at the terminal's width, or wider when the table needs it (all of a wide table;
    the whole columns of a narrow one on a tiny terminal): the terminal then wraps lines,
    whereas rich would hide or cut columns."""
    out = console()
    measured = Measurement.get(out, out.options.update_width(_WIDE_LIMIT), table)
    needed = measured.maximum if wide else measured.minimum
    if needed > out.width:
        out = Console(soft_wrap=True, width=needed)
    out.print(table)


def age(stamp: Timestamp, now: datetime) -> str:
    """How long ago, as kubectl's AGE: ``42s``, ``17m``, ``5h``, ``3d``."""
    seconds = max(0, int((now - stamp.ToDatetime(tzinfo=now.tzinfo)).total_seconds()))
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds >= 2 * size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


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


def _last_error(node: nodes_pb2.NodeInfo) -> str:
    if not node.HasField("last_error"):
        return ""
    error = node.last_error
    return f"{error.code}: {error.message}" if error.code else error.message


def nodes_table(nodes: Sequence[nodes_pb2.NodeInfo], *, now: datetime, wide: bool = False) -> Table:
    """Node, region, status, app, rps and errors/s fit 80 columns (last errors are printed
    under the table, ``nodes_notes``); ``wide`` adds requests in flight, the PoP, assignment
    versions, how long ago the last heartbeat came, the address and the last error."""
    columns = [
        Column(header="NODE"),
        Column(header="REGION"),
        Column(header="STATUS"),
        Column(header="APP", wrap=True),
        Column(header="RPS", right=True),
        Column(header="ERR/S", right=True),
    ]
    if wide:
        columns += [
            Column(header="IN FLIGHT", right=True),
            Column(header="POP"),
            Column(header="ASSIGNED"),
            Column(header="DESIRED"),
            Column(header="HEARTBEAT"),
            Column(header="ADDRESS"),
            Column(header="LAST ERROR"),
        ]
    rows: list[list[Cell]] = []
    for node in nodes:
        status = STATUS_NAMES.get(node.status, "unknown")
        errors = node.load.errors_per_second
        row: list[Cell] = [
            node.node_id,
            node.region,
            Text(status, style="" if status == "ready" else "yellow"),
            f"{node.app_name}@{node.app_version}" if node.app_version else "-",
            f"{node.load.requests_per_second:.1f}",
            Text(f"{errors:.1f}", style="red" if errors else ""),
        ]
        if wide:
            row += [
                str(node.load.in_flight),
                node.pop or "-",
                node.assignment_version or "-",
                node.desired_version or "-",
                age(node.last_heartbeat, now) if node.HasField("last_heartbeat") else "-",
                node.address or "-",
                Text(_last_error(node), style="red"),
            ]
        rows.append(row)
    return build_table(columns, rows, wide=wide)


def nodes_notes(nodes: Sequence[nodes_pb2.NodeInfo]) -> list[str]:
    """Lines under the narrow table: each node's last error, whole."""
    return [f"{node.node_id}: last error: {_last_error(node)}" for node in nodes if _last_error(node)]


def modules_table(modules: Sequence[modules_pb2.ModuleInfo], *, wide: bool = False) -> Table:
    """The first 16 hex digits of a digest; ``wide``: all 64 (what ``modules rm`` takes) and
    when it was pushed, and the ids of the keys that signed it (its imports are in ``-o json``)."""
    columns = [
        Column(header="SHA256"),
        Column(header="NAME", wrap=True),
        Column(header="SIZE", right=True),
        Column(header="ABI"),
        Column(header="USED BY", wrap=True),
    ]
    if wide:
        columns += [Column(header="CREATED"), Column(header="SIGNED BY", wrap=True)]
    rows: list[list[Cell]] = []
    for module in modules:
        row: list[Cell] = [
            module.sha256 if wide else module.sha256[:SHORT_DIGEST],
            module.name,
            f"{module.size_bytes:,}",
            ABI_NAMES.get(module.abi, "?"),
            ", ".join(module.used_by) or "-",
        ]
        if wide:
            row.append(module.created_at.ToJsonString() if module.HasField("created_at") else "-")
            row.append(", ".join(s.key_id for s in module.signatures) or "-")
        rows.append(row)
    return build_table(columns, rows, wide=wide)


def apps_table(apps: Sequence[apps_pb2.AppSummary], *, wide: bool = False) -> Table:
    columns = [Column(header="APP"), Column(header="LATEST"), Column(header="VERSIONS", wrap=True)]
    rows = [[app.name, app.latest, ", ".join(app.versions)] for app in apps]
    return build_table(columns, rows, wide=wide)


def app_table(app: apps_pb2.AppVersion, *, wide: bool = False) -> Table:
    """One row per route; ``wide`` adds each module's whole digest, ABI and CPU deadline."""
    columns = [
        Column(header="ROUTE", wrap=True),
        Column(header="TARGET", wrap=True),
        Column(header="MODULE SHA256"),
        Column(header="MEMORY", right=True),
    ]
    if wide:
        columns += [Column(header="ABI"), Column(header="TIMEOUT", right=True)]
    modules = {m.name: m for m in app.modules}
    rows = [_route_row(route, modules, wide=wide)[: len(columns)] for route in app.routes]
    title = f"{app.name}@{app.version}" + (f"  digest {app.digest}" if wide and app.digest else "")
    return build_table(columns, rows, wide=wide, title=title)


def _route_row(route: apps_pb2.Route, modules: dict[str, apps_pb2.ModuleRef], *, wide: bool) -> list[Cell]:
    """Route, target, digest, memory, ABI, timeout (the caller keeps the columns it shows)."""
    if route.WhichOneof("target") != "module":
        return [route.path, f"origin {route.origin}", "", "", "", ""]
    ref = modules.get(route.module)
    if ref is None:
        return [route.path, f"module {route.module}", "?", "", "", ""]
    timeout_ms = ref.timeout.ToMilliseconds() if ref.HasField("timeout") else 0
    return [
        route.path,
        f"module {route.module}",
        ref.sha256 if wide else ref.sha256[:SHORT_DIGEST],
        f"{ref.memory_bytes:,}",
        ABI_NAMES.get(ref.abi, "?"),
        f"{timeout_ms:,} ms" if timeout_ms else "-",
    ]
