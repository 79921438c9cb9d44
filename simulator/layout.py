"""Which processes a world runs, with which flags: pure code from the world file.

Node ids are the region id plus a letter per node (``ap-northeast-2-a``,
``ap-northeast-2-b``, ...), the way operators name them in `edgectl` output.

Every listener starts on port 0 (any free port) and each spec says how to pin it: once a
process has reported its ports, a restart by the supervisor asks for the same ones. The
region's nodes reach the control plane through the world's fault relay (one link per
region, ``cp-REGION``), the network edge where ``edgecdn chaos partition`` cuts them off.
"""

from __future__ import annotations

import string
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from geo.world import World
from runtime.ready import ReadyReport
from simulator.supervisor import ChildSpec, PinArgv

MAX_NODES_PER_REGION = len(string.ascii_lowercase)
ROUTER_ADDRESS = "127.0.0.1"
# Every process of the world sends its spans to the world's control plane (the default
# when it knows one), never straight to a collector named in the operator's environment;
# that collector gets everything forwarded by the control plane (``--otlp-forward``).
WORLD_TRACE_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}
FAULT_RELAY_NAME = "fault-relay"
# The world's nodes come back to the control plane at most this long after it returns (a
# partition healed, a restart): 8 nodes need no longer back-off to spare the control plane.
NODE_RECONNECT_MAX = "1s"


def control_plane_link(region_id: str) -> str:
    """The fault relay's link that carries ``region_id``'s nodes to the control plane."""
    return f"cp-{region_id}"


def port_of(address: str) -> int:
    """The port of ``host:port`` or ``http://host:port``."""
    parts = urlsplit(address if "//" in address else f"//{address}")
    if parts.port is None:
        raise ValueError(f"{address!r} has no port")
    return parts.port


def with_flag(argv: Sequence[str], flag: str, value: str) -> tuple[str, ...]:
    """``argv`` with the value after ``flag`` replaced (the flag must be there)."""
    position = list(argv).index(flag) + 1
    return (*argv[:position], value, *argv[position + 1 :])


def pin_flag(flag: str, address_key: str) -> PinArgv:
    """On restart, ``flag`` gets the port the process reported under ``address_key`` (if it
    reported one: then the flag keeps its value)."""

    def pin(argv: Sequence[str], report: ReadyReport) -> Sequence[str]:
        address = report.addresses.get(address_key)
        return argv if address is None else with_flag(argv, flag, str(port_of(address)))

    return pin


def pin_flags(*pins: PinArgv) -> PinArgv:
    """Every one of ``pins``, one after the other."""

    def pin(argv: Sequence[str], report: ReadyReport) -> Sequence[str]:
        for each in pins:
            argv = each(argv, report)
        return argv

    return pin


@dataclass(frozen=True, slots=True, kw_only=True)
class ExtraFlags:
    """Flags and environment a plan adds to a process (e.g. how to reach the MQTT broker)."""

    argv: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)


NO_EXTRA = ExtraFlags()


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeNodePlan:
    node_id: str
    region: str
    spec: ChildSpec


def node_ids(region_id: str, count: int) -> list[str]:
    if count > MAX_NODES_PER_REGION:
        raise ValueError(f"region {region_id}: at most {MAX_NODES_PER_REGION} edge nodes, got {count}")
    return [f"{region_id}-{letter}" for letter in string.ascii_lowercase[:count]]


def node_regions(world: World) -> dict[str, str]:
    """Node id -> region of every edge node of ``world`` (what each node's token is bound to)."""
    return {node_id: r.id for r in world.regions for node_id in node_ids(r.id, r.edge_nodes)}


def control_plane_spec(
    *,
    data_dir: Path,
    tokens_file: Path,
    module_cache_dir: Path | None = None,
    world_file: Path | None = None,
    otlp_forward: str | None = None,
    extra: ExtraFlags = NO_EXTRA,
) -> ChildSpec:
    forward = ("--otlp-forward", otlp_forward) if otlp_forward else ()
    # The nodes' compiled-module directory: what the control plane compiles while checking an
    # upload, every node then loads instead of compiling it again.
    compiled = ("--module-cache-dir", str(module_cache_dir)) if module_cache_dir else ()
    # The world's regions are known to the control plane before any node reports them.
    world = ("--world", str(world_file)) if world_file else ()
    return ChildSpec(
        name="control-plane",
        argv=(
            sys.executable, "-m", "control_plane", "--host", "127.0.0.1", "--port", "0",
            "--metrics-port", "0",
            "--data-dir", str(data_dir), "--tokens", str(tokens_file), *compiled, *world, *forward,
            *extra.argv,
        ),
        env={**WORLD_TRACE_ENV, **extra.env},
        # A restart keeps both ports: nodes dial the gRPC one, Prometheus scrapes the other.
        pin=pin_flags(pin_flag("--port", "grpc"), pin_flag("--metrics-port", "metrics")),
    )  # fmt: skip


def fault_relay_spec(world: World, *, control_plane: str, token: str, state_file: Path) -> ChildSpec:
    """The world's network edge between nodes and the control plane: a link per region with
    edge nodes, each relaying to the control plane (faultrelay, docs/faultrelay.md)."""
    links = tuple(
        f"--link={control_plane_link(region.id)}=0:{control_plane}"
        for region in world.regions
        if region.edge_nodes
    )
    return ChildSpec(
        name=FAULT_RELAY_NAME,
        argv=(
            sys.executable, "-m", "faultrelay", "--host", ROUTER_ADDRESS, "--admin-port", "0",
            "--state-file", str(state_file), *links,
        ),
        env={"EDGE_FAULTRELAY_TOKEN": token},
        pin=_pin_relay,
    )  # fmt: skip


def _pin_relay(argv: Sequence[str], report: ReadyReport) -> Sequence[str]:
    pinned = with_flag(argv, "--admin-port", str(port_of(report.addresses["admin"])))
    return [_pin_link(arg, report) if arg.startswith("--link=") else arg for arg in pinned]


def _pin_link(arg: str, report: ReadyReport) -> str:
    name, _, rest = arg.removeprefix("--link=").partition("=")
    _, _, upstream = rest.partition(":")
    return f"--link={name}={port_of(report.addresses[name])}:{upstream}"


def edge_node_plans(
    world: World,
    *,
    control_plane: Mapping[str, str],
    node_tokens: Mapping[str, str],
    state_dir: Path,
    geo_cache_dir: Path,
    module_cache_dir: Path | None = None,
    extra: ExtraFlags = NO_EXTRA,
) -> list[EdgeNodePlan]:
    """One edge node per slot of every region, each with its own data directory, each serving
    what the control plane assigns, each with its own token (``node_tokens``: node id -> a
    token bound to that node and region; in the environment, not on the command line).

    ``control_plane`` maps a region id to the address its nodes dial (their fault-relay link).
    """
    plans = []
    for region in world.regions:
        for node_id in node_ids(region.id, region.edge_nodes):
            argv = (
                sys.executable, "-m", "edge_node",
                "--control-plane", control_plane[region.id],
                "--reconnect-max", NODE_RECONNECT_MAX,
                "--region", region.id,
                "--node-id", node_id,
                "--world", str(world.source),
                "--data-dir", str(state_dir / "nodes" / node_id),
                "--geo-cache-dir", str(geo_cache_dir),
                *(("--module-cache-dir", str(module_cache_dir)) if module_cache_dir else ()),
                "--host", "127.0.0.1",
                "--port", "0",
                "--workers", str(region.node_workers),
                # The router (on 127.0.0.1) tells the node who the client is; simulated
                # clients use 127.N.x.x addresses, so only 127.0.0.1 itself is trusted.
                "--trusted-proxy", ROUTER_ADDRESS,
                *extra.argv,
            )  # fmt: skip
            plans.append(
                EdgeNodePlan(
                    node_id=node_id,
                    region=region.id,
                    spec=ChildSpec(
                        name=f"edge-node {node_id}",
                        argv=argv,
                        env={**WORLD_TRACE_ENV, **extra.env, "EDGE_NODE_TOKEN": node_tokens[node_id]},
                        pin=pin_flag("--port", "http"),
                    ),
                )
            )
    return plans


def router_spec(
    world: World, *, control_plane: str, router_token: str, admin_token: str, geo_cache_dir: Path
) -> ChildSpec:
    """The world's front door: follows the control plane's live node inventory (with a token of
    the router role, in the environment; it routes only to the nodes the control plane vouches
    for) and emulates the WAN between clients and PoPs, with the faults ``edgecdn chaos wan``
    sets through its admin endpoints (``admin_token``)."""
    return ChildSpec(
        name="edge-router",
        argv=(
            sys.executable, "-m", "router",
            "--world", str(world.source),
            "--control-plane", control_plane,
            "--geo-cache-dir", str(geo_cache_dir),
            "--wan", "model",
            "--host", ROUTER_ADDRESS,
            "--port", "0",
        ),
        env={**WORLD_TRACE_ENV, "EDGE_ROUTER_TOKEN": router_token, "EDGE_ROUTER_ADMIN_TOKEN": admin_token},
        pin=pin_flag("--port", "http"),
    )  # fmt: skip


def world_origin_spec(*, port: int) -> ChildSpec:
    """The world's origin (``simulator.world_origin``), on ``port`` (0: any free one). Its port
    outlives the world: the app the control plane keeps names the origin's URL."""
    return ChildSpec(
        name="world-origin",
        argv=(sys.executable, "-m", "simulator.world_origin", "--host", ROUTER_ADDRESS, "--port", str(port)),
        pin=pin_flag("--port", "http"),
    )
