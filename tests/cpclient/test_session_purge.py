"""NodeSession's answer to CachePurge: the node's purge callback, or 0 without one or on failure."""

from __future__ import annotations

import asyncio

import grpc

from cpclient import MemoryModuleStore, NodeIdentity, NodeSession, SessionSettings
from cpclient.backoff import Backoff
from cpclient.session import PurgeCallback
from httpcache.model import PurgeSelector
from protos.edgecdn.v1 import cache_pb2, cache_pb2_grpc
from tests.control_plane.support import LiveControlPlane

FAST = Backoff(initial_s=0.05, maximum_s=0.2)


async def purge_once(
    live: LiveControlPlane, callback: PurgeCallback | None
) -> tuple[cache_pb2.PurgeCacheResponse, NodeSession]:
    session = NodeSession(
        SessionSettings(target=live.address, token=live.tokens["node"], backoff=FAST),
        NodeIdentity(node_id="eu-1-a", region="eu-1"),
        apply=lambda assignment, modules: None,
        store=MemoryModuleStore(),
        purge=callback,
    )
    task = asyncio.create_task(session.run())
    try:
        await session.wait_until(lambda s: s.connected, 10)
        async with grpc.aio.insecure_channel(live.address) as channel:
            response = await cache_pb2_grpc.CacheServiceStub(channel).PurgeCache(
                cache_pb2.PurgeCacheRequest(path_prefixes=["/img/"], timeout_seconds=10),
                metadata=live.md("operator"),
            )
        return response, session
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_callback_count_is_reported(live: LiveControlPlane) -> None:
    seen: list[tuple[PurgeSelector, bool]] = []

    def purge(selector: PurgeSelector, soft: bool) -> int:
        seen.append((selector, soft))
        return 7

    response, session = await purge_once(live, purge)
    assert seen == [(PurgeSelector(prefixes=("/img/",)), False)]
    assert response.regions[0].entries_removed == 7
    assert response.regions[0].nodes_done == 1
    assert session.stats.purges == 1


async def test_without_a_cache_the_node_answers_zero(live: LiveControlPlane) -> None:
    response, _ = await purge_once(live, None)
    assert response.regions[0].nodes_done == 1
    assert response.regions[0].entries_removed == 0


async def test_a_failing_purge_answers_zero_and_keeps_the_session(live: LiveControlPlane) -> None:
    def purge(selector: PurgeSelector, soft: bool) -> int:
        raise RuntimeError("disk gone")

    response, session = await purge_once(live, purge)
    assert response.regions[0].nodes_done == 1
    assert response.regions[0].entries_removed == 0
    assert session.stats.connects == 1
