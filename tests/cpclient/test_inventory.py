"""The live node inventory against a real control plane with real node sessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from cpclient import Backoff
from cpclient.inventory import NodeInventory
from protos.edgecdn.v1 import nodes_pb2
from tests.control_plane.support import LiveControlPlane
from tests.cpclient.test_session import CompilingNode, new_session, running

FAST = Backoff(initial_s=0.05, maximum_s=0.2)


@asynccontextmanager
async def watching(inventory: NodeInventory) -> AsyncIterator[NodeInventory]:
    stop = asyncio.Event()
    task = asyncio.create_task(inventory.run(stop), name="test-inventory")
    try:
        yield inventory
    finally:
        stop.set()
        await asyncio.wait_for(task, 5)


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not predicate():  # noqa: ASYNC110 - polls state another task owns
            await asyncio.sleep(0.02)


async def test_snapshot_then_joins_and_leaves(live: LiveControlPlane) -> None:
    node = CompilingNode()
    changes: list[int] = []
    inventory = NodeInventory(
        live.address, live.tokens["viewer"], backoff=FAST, on_change=lambda nodes: changes.append(len(nodes))
    )
    async with running(new_session(live, node, node_id="eu-1-a")), watching(inventory):
        await inventory.wait_synced(5)
        assert set(inventory.nodes) == {"eu-1-a"}
        assert inventory.nodes["eu-1-a"].status == nodes_pb2.NODE_STATUS_READY
        assert inventory.nodes["eu-1-a"].address == "http://eu-1-a.test"
        async with running(new_session(live, node, node_id="us-1-a", region="us-1")):
            await eventually(lambda: "us-1-a" in inventory.nodes)
            assert inventory.nodes["us-1-a"].region == "us-1"
        await eventually(lambda: inventory.nodes["us-1-a"].status != nodes_pb2.NODE_STATUS_READY)
    assert changes[0] == 1, "the first change is the whole snapshot at once"


async def test_region_filter(live: LiveControlPlane) -> None:
    node = CompilingNode()
    inventory = NodeInventory(live.address, live.tokens["viewer"], regions=["us-1"], backoff=FAST)
    async with (
        running(new_session(live, node, node_id="eu-1-a")),
        running(new_session(live, node, node_id="us-1-a", region="us-1")),
        watching(inventory),
    ):
        await inventory.wait_synced(5)
        await eventually(lambda: "us-1-a" in inventory.nodes)
        assert set(inventory.nodes) == {"us-1-a"}


async def test_keeps_the_last_set_and_says_why_when_refused(live: LiveControlPlane) -> None:
    inventory = NodeInventory(live.address, "not-a-valid-token", backoff=FAST)
    async with watching(inventory):
        await eventually(lambda: inventory.last_error != "")
        assert "UNAUTHENTICATED" in inventory.last_error
        assert not inventory.synced
        assert dict(inventory.nodes) == {}
