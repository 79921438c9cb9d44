"""Which processes a world runs, with which flags: pure code from the world file.

Node ids are the region id plus a letter per node (``ap-northeast-2-a``,
``ap-northeast-2-b``, ...), the way operators name them in `edgectl` output.
"""

from __future__ import annotations

import string
import sys
from dataclasses import dataclass
from pathlib import Path

from geo.world import World
from simulator.supervisor import ChildSpec

MAX_NODES_PER_REGION = len(string.ascii_lowercase)
ROUTER_ADDRESS = "127.0.0.1"
# Every process of the world sends its spans to the world's control plane (the default
# when it knows one), never straight to a collector named in the operator's environment;
# that collector gets everything forwarded by the control plane (``--otlp-forward``).
WORLD_TRACE_ENV = {"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": ""}


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeNodePlan:
    node_id: str
    region: str
    spec: ChildSpec


def node_ids(region_id: str, count: int) -> list[str]:
    if count > MAX_NODES_PER_REGION:
        raise ValueError(f"region {region_id}: at most {MAX_NODES_PER_REGION} edge nodes, got {count}")
    return [f"{region_id}-{letter}" for letter in string.ascii_lowercase[:count]]


def control_plane_spec(*, data_dir: Path, tokens_file: Path, otlp_forward: str | None = None) -> ChildSpec:
    forward = ("--otlp-forward", otlp_forward) if otlp_forward else ()
    return ChildSpec(
        name="control-plane",
        argv=(
            sys.executable, "-m", "control_plane", "--host", "127.0.0.1", "--port", "0",
            "--data-dir", str(data_dir), "--tokens", str(tokens_file), *forward,
        ),
        env=WORLD_TRACE_ENV,
    )  # fmt: skip


def edge_node_plans(
    world: World, *, control_plane: str, node_token: str, state_dir: Path, geo_cache_dir: Path
) -> list[EdgeNodePlan]:
    """One edge node per slot of every region, each with its own data directory, each serving
    what the control plane assigns (the token goes in the environment, not on the command line)."""
    plans = []
    for region in world.regions:
        for node_id in node_ids(region.id, region.edge_nodes):
            argv = (
                sys.executable, "-m", "edge_node",
                "--control-plane", control_plane,
                "--region", region.id,
                "--node-id", node_id,
                "--world", str(world.source),
                "--data-dir", str(state_dir / "nodes" / node_id),
                "--geo-cache-dir", str(geo_cache_dir),
                "--host", "127.0.0.1",
                "--port", "0",
                # The router (on 127.0.0.1) tells the node who the client is; simulated
                # clients use 127.N.x.x addresses, so only 127.0.0.1 itself is trusted.
                "--trusted-proxy", ROUTER_ADDRESS,
            )  # fmt: skip
            plans.append(
                EdgeNodePlan(
                    node_id=node_id,
                    region=region.id,
                    spec=ChildSpec(
                        name=f"edge-node {node_id}",
                        argv=argv,
                        env={**WORLD_TRACE_ENV, "EDGE_NODE_TOKEN": node_token},
                    ),
                )
            )
    return plans


def router_spec(world: World, *, control_plane: str, node_token: str, geo_cache_dir: Path) -> ChildSpec:
    """The world's front door: follows the control plane's live node inventory (with the node
    token, in the environment) and emulates the WAN between clients and PoPs."""
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
        env={**WORLD_TRACE_ENV, "EDGE_ROUTER_TOKEN": node_token},
    )  # fmt: skip
