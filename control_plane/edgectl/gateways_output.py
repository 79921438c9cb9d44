"""How ``edgectl gateways`` shows gateways and command results: JSON with stable keys, tables
that fit 80 columns (``-o wide``: every column), notes under a narrow table for what does
not fit (why a gateway is offline, its last error)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.protobuf.json_format import MessageToDict
from rich.table import Table
from rich.text import Text

from control_plane.edgectl.output import SHORT_DIGEST, Cell, Column, age, build_table
from protos.edgecdn.v1 import gateways_pb2


def gateway_dict(gateway: gateways_pb2.GatewayInfo) -> dict[str, Any]:
    """One gateway as ``-o json`` prints it (keys only ever added)."""
    return {
        "gateway_id": gateway.gateway_id,
        "region": gateway.region,
        "online": gateway.online,
        "offline_reason": gateway.offline_reason or None,
        "module_sha256": gateway.module_sha256,
        "module_name": gateway.module_name,
        "sensors": list(gateway.sensors),
        "labels": dict(sorted(gateway.labels.items())),
        "interval_s": gateway.interval.ToTimedelta().total_seconds(),
        "last_seen": gateway.last_seen.ToJsonString() if gateway.HasField("last_seen") else None,
        "readings_total": gateway.readings_total,
        "alerts_total": gateway.alerts_total,
        "module_errors_total": gateway.module_errors_total,
        "rollbacks_total": gateway.rollbacks_total,
        "last_error": gateway.last_error or None,
        "results_received": gateway.results_received,
        "alerts_received": gateway.alerts_received,
    }


def result_dict(result: gateways_pb2.GatewayCommandResult) -> dict[str, Any]:
    return {
        "gateway_id": result.gateway_id,
        "region": result.region,
        "ok": result.ok,
        "timed_out": result.timed_out,
        "message": result.message,
        "elapsed_s": round(result.elapsed.ToTimedelta().total_seconds(), 3),
        "status": MessageToDict(result.status) if result.HasField("status") else None,
    }


def _state(gateway: gateways_pb2.GatewayInfo) -> Text:
    return Text("online", style="green") if gateway.online else Text("offline", style="yellow")


def gateways_table(gateways: Sequence[gateways_pb2.GatewayInfo], *, now: datetime, wide: bool) -> Table:
    """Gateway, region, state, module, readings and alerts fit 80 columns; ``wide`` adds the
    whole digest, when it was last heard from, interval, sensors, labels, module errors,
    rollbacks and why it is offline."""
    columns = [
        Column(header="GATEWAY"),
        Column(header="REGION"),
        Column(header="STATE"),
        Column(header="MODULE", wrap=True),
        Column(header="READINGS", right=True),
        Column(header="ALERTS", right=True),
    ]
    if wide:
        columns += [
            Column(header="SHA256"),
            Column(header="SEEN"),
            Column(header="INTERVAL", right=True),
            Column(header="SENSORS"),
            Column(header="LABELS"),
            Column(header="ERRORS", right=True),
            Column(header="ROLLBACKS", right=True),
            Column(header="OFFLINE REASON"),
        ]
    rows: list[list[Cell]] = []
    for g in gateways:
        module = g.module_name or (g.module_sha256[:SHORT_DIGEST] if g.module_sha256 else "-")
        row: list[Cell] = [
            g.gateway_id,
            g.region,
            _state(g),
            module,
            f"{g.readings_total:,}",
            f"{g.alerts_total:,}",
        ]
        if wide:
            interval = g.interval.ToTimedelta().total_seconds()
            row += [
                g.module_sha256 or "-",
                age(g.last_seen, now) if g.HasField("last_seen") else "-",
                f"{interval:g}s" if interval else "-",
                ",".join(g.sensors) or "-",
                ",".join(f"{k}={v}" for k, v in sorted(g.labels.items())) or "-",
                Text(str(g.module_errors_total), style="red" if g.module_errors_total else ""),
                str(g.rollbacks_total),
                g.offline_reason or "-",
            ]
        rows.append(row)
    return build_table(columns, rows, wide=wide)


def gateways_notes(gateways: Sequence[gateways_pb2.GatewayInfo]) -> list[str]:
    """Lines under the narrow table: why each offline gateway is offline, last errors."""
    notes = [
        f"{g.gateway_id}: offline ({g.offline_reason})" for g in gateways if not g.online and g.offline_reason
    ]
    return notes + [f"{g.gateway_id}: last error: {g.last_error}" for g in gateways if g.last_error]


def gateway_table(gateway: gateways_pb2.GatewayInfo, *, now: datetime) -> Table:
    """``gateways show``: one field per row."""
    fields = gateway_dict(gateway)
    if gateway.HasField("last_seen"):
        fields["last_seen"] = f"{fields['last_seen']} ({age(gateway.last_seen, now)} ago)"
    rows: list[list[Cell]] = []
    for key, value in fields.items():
        shown = (
            ", ".join(value)
            if isinstance(value, list)
            else ", ".join(f"{k}={v}" for k, v in value.items())
            if isinstance(value, dict)
            else ""
            if value is None
            else str(value)
        )
        rows.append([key, shown or "-"])
    return build_table([Column(header="FIELD"), Column(header="VALUE", wrap=True)], rows, wide=False)


def results_table(results: Sequence[gateways_pb2.GatewayCommandResult], *, wide: bool) -> Table:
    """One row per gateway: ok, failed or timed out, and its message (which wraps)."""
    columns = [Column(header="GATEWAY"), Column(header="REGION"), Column(header="RESULT")]
    columns += [Column(header="TIME", right=True), Column(header="MESSAGE", wrap=True)]
    rows: list[list[Cell]] = []
    for r in results:
        word, style = (
            ("ok", "green") if r.ok else ("timed out", "yellow") if r.timed_out else ("failed", "red")
        )
        elapsed = r.elapsed.ToTimedelta().total_seconds()
        rows.append([r.gateway_id, r.region, Text(word, style=style), f"{elapsed:.2f}s", r.message or "-"])
    return build_table(columns, rows, wide=wide)
