"""PurgeCache end to end: real gRPC, the real control plane, ~50 real node sessions."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import grpc
import pytest

from cpclient import MemoryModuleStore, NodeIdentity, NodeSession, SessionSettings
from cpclient.backoff import Backoff
from httpcache.model import PurgeSelector
from protos.edgecdn.v1 import cache_pb2, cache_pb2_grpc, common_pb2, nodes_pb2, nodes_pb2_grpc
from tests.control_plane.support import LiveControlPlane

FAST = Backoff(initial_s=0.05, maximum_s=0.2)
REGIONS = ("eu-1", "us-1", "ap-1")


class Cache:
    """A node's purge callback that records what it was asked."""

    def __init__(self, removed: int) -> None:
        self.removed = removed
        self.calls: list[tuple[PurgeSelector, bool]] = []

    def purge(self, selector: PurgeSelector, soft: bool) -> int:
        self.calls.append((selector, soft))
        return self.removed


@asynccontextmanager
async def nodes(live: LiveControlPlane, count: int) -> AsyncIterator[dict[str, Cache]]:
    caches: dict[str, Cache] = {}
    tasks: list[asyncio.Task[None]] = []
    sessions: list[NodeSession] = []
    async with grpc.aio.insecure_channel(live.address) as shared:
        for i in range(count):
            region = REGIONS[i % len(REGIONS)]
            node_id = f"{region}-n{i}"
            caches[node_id] = Cache(removed=i % 4)
            session = NodeSession(
                SessionSettings(target=live.address, token=live.tokens["node"], backoff=FAST),
                NodeIdentity(node_id=node_id, region=region),
                apply=lambda assignment, modules: None,
                store=MemoryModuleStore(),
                channel=shared,
                purge=caches[node_id].purge,
            )
            sessions.append(session)
            tasks.append(asyncio.create_task(session.run()))
        try:
            await asyncio.gather(*(s.wait_until(lambda s: s.connected, 20) for s in sessions))
            yield caches
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)


@asynccontextmanager
async def silent_node(live: LiveControlPlane, node_id: str, region: str) -> AsyncIterator[None]:
    """A node that says hello and never answers anything."""
    async with grpc.aio.insecure_channel(live.address) as channel:
        gone = asyncio.Event()

        async def requests() -> AsyncIterator[nodes_pb2.NodeMessage]:
            yield nodes_pb2.NodeMessage(hello=nodes_pb2.NodeHello(node_id=node_id, region=region))
            await gone.wait()

        call = nodes_pb2_grpc.NodeSessionServiceStub(channel).Connect(requests(), metadata=live.md("node"))
        first = await call.read()
        assert isinstance(first, nodes_pb2.ControlMessage)
        assert first.WhichOneof("message") == "params"
        try:
            yield
        finally:
            gone.set()
            call.cancel()


async def test_purge_reaches_every_selected_node_once(live: LiveControlPlane) -> None:
    async with AsyncExitStack() as stack, grpc.aio.insecure_channel(live.address) as channel:
        caches = await stack.enter_async_context(nodes(live, 48))
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        response = await stub.PurgeCache(
            cache_pb2.PurgeCacheRequest(
                target=common_pb2.Selector(regions=["eu-1", "us-1"]),
                urls=["https://x.example/a?b=1"],
                tags=["t1"],
                soft=True,
            ),
            metadata=live.md("operator"),
        )
        selected = {n for n in caches if not n.startswith("ap-1")}
        assert set(response.node_ids) == selected
        assert [r.region for r in response.regions] == ["eu-1", "us-1"]
        for row in response.regions:
            ids = [n for n in caches if n.startswith(row.region)]
            assert row.nodes_targeted == row.nodes_done == len(ids)
            assert row.entries_removed == sum(caches[n].removed for n in ids)
            assert not row.late_node_ids
        for node_id, cache in caches.items():
            if node_id in selected:
                assert cache.calls == [(PurgeSelector(urls=("/a?b=1",), tags=("t1",)), True)]
            else:
                assert cache.calls == []


async def test_a_silent_node_is_late(live: LiveControlPlane) -> None:
    async with AsyncExitStack() as stack, grpc.aio.insecure_channel(live.address) as channel:
        caches = await stack.enter_async_context(nodes(live, 6))
        await stack.enter_async_context(silent_node(live, "eu-1-quiet", "eu-1"))
        response = await cache_pb2_grpc.CacheServiceStub(channel).PurgeCache(
            cache_pb2.PurgeCacheRequest(everything=True, timeout_seconds=0.5),
            metadata=live.md("operator"),
        )
        eu = next(r for r in response.regions if r.region == "eu-1")
        assert list(eu.late_node_ids) == ["eu-1-quiet"]
        assert eu.nodes_targeted == eu.nodes_done + 1
        assert all(len(c.calls) == 1 for c in caches.values())


async def test_refusals(live: LiveControlPlane) -> None:
    async with grpc.aio.insecure_channel(live.address) as channel:
        stub = cache_pb2_grpc.CacheServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as nothing:
            await stub.PurgeCache(cache_pb2.PurgeCacheRequest(), metadata=live.md("operator"))
        assert nothing.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "nothing to purge" in (nothing.value.details() or "")
        with pytest.raises(grpc.aio.AioRpcError) as viewer:
            await stub.PurgeCache(cache_pb2.PurgeCacheRequest(everything=True), metadata=live.md("viewer"))
        assert viewer.value.code() == grpc.StatusCode.PERMISSION_DENIED
