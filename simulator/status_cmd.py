"""``edgecdn status``: every process of the running world, and whether it answers.

It reads ``.edgecdn/world.json`` (kept current by ``edgecdn up``'s supervisor: pid,
state, restarts, last exit) and asks each process itself: the control plane through the
gRPC health service, the MQTT broker with an MQTT CONNECT (any CONNACK, a refusal of
the anonymous probe included, proves it answers), edge nodes, gateways, the router and the
fault relay through ``/healthz``. A
process the supervisor thinks up can still be frozen (``edgecdn chaos freeze``, read from
/proc) or not answering; the table says which, so "up" always means "answered just now".

    edgecdn status            a table (80 columns)
    edgecdn status -o wide    also what each probe found, and how each last run ended in full
    edgecdn status -o json    all of it as JSON, for scripts
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import aiomqtt
import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from rich import box
from rich.console import Console
from rich.table import Table

from runtime.cli import HelpFormatter, add_state_dir_flag, fail
from runtime.errors import WorldStateError
from runtime.world_state import STATE_FILE_NAME, ProcessEntry, WorldState, read_world_state
from simulator.procfs import is_frozen, run_state

PROG = "edgecdn status"
PROBE_TIMEOUT_S = 1.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ProcessStatus:
    """What the supervisor says of a process, and what asking it found."""

    entry: ProcessEntry
    state: str  # up, frozen, unresponsive, restarting, gone
    probe: str  # "ok 1.2 ms", or why not

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.entry.to_dict(),
            "state": self.state,
            "supervisor_state": self.entry.state,
            "probe": self.probe,
        }


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "status",
        help="every process of the running world: up/restarting/down, restarts, last exit",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    add_state_dir_flag(parser)
    parser.add_argument(
        "-o",
        "--output",
        choices=["table", "wide", "json"],
        default="table",
        help="output format (default: table)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        state = read_world_state(args.state_dir / STATE_FILE_NAME)
    except WorldStateError as exc:
        fail(PROG, str(exc))
    statuses = asyncio.run(probe_world(state))
    if args.output == "json":
        processes = [status.to_dict() for status in statuses]
        sys.stdout.write(json.dumps({"supervisor_pid": state.supervisor_pid, "processes": processes}) + "\n")
    else:
        _print_table(statuses, wide=args.output == "wide")
    return 0 if all(status.state == "up" for status in statuses) else 1


async def probe_world(state: WorldState) -> list[ProcessStatus]:
    """Ask every process of ``state`` at once."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=PROBE_TIMEOUT_S)) as http:
        return list(await asyncio.gather(*(_status(entry, http) for entry in state.processes)))


async def _status(entry: ProcessEntry, http: aiohttp.ClientSession) -> ProcessStatus:
    if entry.state != "up":
        return ProcessStatus(entry=entry, state=entry.state, probe="-")
    if run_state(entry.pid) is None:
        return ProcessStatus(entry=entry, state="gone", probe=f"no process {entry.pid}")
    if is_frozen(entry.pid):
        return ProcessStatus(entry=entry, state="frozen", probe="stopped by SIGSTOP")
    started = time.perf_counter()
    problem = await _probe(entry, http)
    if problem:
        return ProcessStatus(entry=entry, state="unresponsive", probe=problem)
    return ProcessStatus(entry=entry, state="up", probe=f"ok {(time.perf_counter() - started) * 1000:.0f}ms")


async def _probe(entry: ProcessEntry, http: aiohttp.ClientSession) -> str:
    """'' when the process answered its health check, else why not."""
    addresses = entry.addresses
    if "grpc" in addresses:
        return await _probe_grpc(addresses["grpc"])
    if "mqtt" in addresses:
        return await _probe_mqtt(addresses["mqtt"])
    url = addresses.get("http") or addresses.get("admin")
    if url is None:
        return "no address to ask"
    try:
        async with http.get(f"{url}/healthz") as response:
            return "" if response.status == 200 else f"/healthz answered {response.status}"
    except (aiohttp.ClientError, TimeoutError) as exc:
        return f"no answer ({type(exc).__name__})"


async def _probe_grpc(address: str) -> str:
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            reply = await health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(), timeout=PROBE_TIMEOUT_S
            )
    except grpc.aio.AioRpcError as exc:
        return f"no answer ({exc.code().name})"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"health: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return ""


async def _probe_mqtt(url: str) -> str:
    parts = urlsplit(url)
    if parts.hostname is None or parts.port is None:
        return f"not an MQTT address: {url}"
    client = aiomqtt.Client(
        parts.hostname, parts.port, timeout=PROBE_TIMEOUT_S, identifier="edgecdn-status-probe"
    )
    try:
        async with client:
            return ""
    except aiomqtt.MqttCodeError:
        return ""  # a CONNACK that refuses the anonymous probe is still an answer
    except aiomqtt.MqttError as exc:
        return f"no answer ({exc})"


def _print_table(statuses: list[ProcessStatus], *, wide: bool) -> None:
    # Fits 80 columns: the probe's answer and the full exit sentence go in -o wide (kubectl's way).
    table = Table(title="EdgeCDN local world", box=box.SIMPLE_HEAD)
    table.add_column("PROCESS", no_wrap=True)
    table.add_column("STATE", no_wrap=True)
    table.add_column("PID", justify="right")
    table.add_column("RESTARTS", justify="right")
    table.add_column("SINCE", no_wrap=True)
    table.add_column("LAST EXIT")
    if wide:
        table.add_column("PROBE")
    colour = {"up": "green", "restarting": "yellow", "frozen": "cyan"}
    now = time.time()
    for status in statuses:
        entry = status.entry
        style = colour.get(status.state, "red")
        since = "-" if entry.since is None else _ago(now - entry.since)
        last_exit = entry.last_exit or "-"
        row = [entry.name, f"[{style}]{status.state}[/{style}]", str(entry.pid), str(entry.restarts), since]
        row.append(last_exit if wide else _short_exit(last_exit))
        if wide:
            row.append(status.probe)
        table.add_row(*row)
    Console().print(table)


def _short_exit(text: str) -> str:
    """``killed by SIGKILL`` -> ``SIGKILL``; ``exited with status 3`` -> ``exit 3``."""
    return text.removeprefix("killed by ").replace("exited with status", "exit")


def _ago(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 120:
        return f"{seconds:.0f}s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f}m ago"
    return f"{seconds / 3600:.1f}h ago"
