"""The router follows the control plane's word: a node record it no longer vouches for (claimed
with a shared token the control plane no longer holds) is not routed to, the others are."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import grpc

from cpclient import auth_metadata
from cpclient.inventory import NodeInventory
from geo.world import load_world
from protos.edgecdn.v1 import nodes_pb2, nodes_pb2_grpc
from router.inventory import entries_from_control_plane
from tests.control_plane.support import control_plane_in_process

REPO_ROOT = Path(__file__).resolve().parents[2]
WORLD = load_world(REPO_ROOT / "deploy" / "local" / "world.toml")
ROUTER, NODE, SHARED = "router-token-1", "node-a-token-1", "shared-node-token-1"
REGION = "eu-central-1"


def write_tokens(path: Path, *, shared: bool) -> Path:
    entries = [
        {"name": "router", "role": "router", "token": ROUTER},
        {"name": "a", "role": "node", "token": NODE, "node_id": f"{REGION}-a", "region": REGION},
    ]
    if shared:
        entries.append({"name": "shared", "role": "node", "token": SHARED})
    path.write_text(json.dumps({"tokens": entries}))
    return path


async def connect(channel: grpc.aio.Channel, token: str, node_id: str, port: int, capacity: float) -> None:
    """Open a session as ``node_id`` and end it once the control plane has accepted it."""
    call = nodes_pb2_grpc.NodeSessionServiceStub(channel).Connect(metadata=auth_metadata(token), timeout=20)
    hello = nodes_pb2.NodeHello(
        node_id=node_id, region=REGION, address=f"http://127.0.0.1:{port}", capacity_rps=capacity
    )
    await call.write(nodes_pb2.NodeMessage(hello=hello))
    message = await asyncio.wait_for(call.read(), 10)
    assert isinstance(message, nodes_pb2.ControlMessage)
    call.cancel()


async def test_the_router_does_not_route_to_a_node_the_control_plane_does_not_vouch_for(
    tmp_path: Path,
) -> None:
    data_dir, tokens = tmp_path / "cp", write_tokens(tmp_path / "tokens.json", shared=True)
    async with (
        control_plane_in_process(data_dir, tokens_file=tokens) as live,
        grpc.aio.insecure_channel(live.address) as channel,
    ):
        await connect(channel, NODE, f"{REGION}-a", 7001, 100.0)
        await connect(channel, SHARED, f"{REGION}-z", 7009, 1e9)  # the rogue of the finding
    # The operator moves to per-node tokens only: the rogue's record stays, its claim does not.
    write_tokens(tokens, shared=False)
    async with control_plane_in_process(data_dir, tokens_file=tokens) as live:
        stop = asyncio.Event()
        inventory = NodeInventory(live.address, ROUTER)  # the router's own role
        task = asyncio.create_task(inventory.run(stop))
        try:
            await inventory.wait_synced(10)
            assert set(inventory.nodes) == {f"{REGION}-a", f"{REGION}-z"}  # both records listed
            entries = entries_from_control_plane(inventory.nodes, WORLD)
        finally:
            stop.set()
            await asyncio.wait_for(task, 10)
    assert [(entry.node_id, entry.url) for entry in entries] == [(f"{REGION}-a", "http://127.0.0.1:7001")]
