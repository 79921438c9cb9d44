"""A node's place in the purge log (cpclient.purge_state), and a node that was away getting
the purges it missed from a real control plane."""

from __future__ import annotations

import asyncio
from pathlib import Path

import grpc

from cpclient import MemoryModuleStore, NodeIdentity, NodeSession, PurgeState, SessionSettings
from cpclient.backoff import Backoff
from httpcache.model import PurgeSelector
from protos.edgecdn.v1 import cache_pb2, cache_pb2_grpc
from tests.control_plane.support import LiveControlPlane

FAST = Backoff(initial_s=0.05, maximum_s=0.2)


def test_an_empty_cache_adopts_the_logs_newest_once(tmp_path: Path) -> None:
    state = PurgeState(tmp_path / "seq")
    assert (state.sequence, state.empty) == (0, True)
    assert state.adopt(7)
    assert not state.adopt(9)  # filled since: it must be told what it missed instead
    assert state.sequence == 7
    assert state.carried_out(8)
    assert not state.carried_out(8)
    state.save()
    again = PurgeState(tmp_path / "seq", cache_empty=False)
    assert (again.sequence, again.empty) == (8, False)


def test_an_unreadable_state_means_never_purged(tmp_path: Path) -> None:
    (tmp_path / "seq").write_text("garbage")
    assert PurgeState(tmp_path / "seq", cache_empty=False).sequence == 0


async def purge(live: LiveControlPlane, tag: str) -> cache_pb2.PurgeCacheResponse:
    async with grpc.aio.insecure_channel(live.address) as channel:
        return await cache_pb2_grpc.CacheServiceStub(channel).PurgeCache(
            cache_pb2.PurgeCacheRequest(tags=[tag], timeout_seconds=5), metadata=live.md("operator")
        )


async def test_a_node_that_was_away_gets_the_purges_it_missed(live: LiveControlPlane, tmp_path: Path) -> None:
    seen: list[tuple[str, ...]] = []

    def carry_out(selector: PurgeSelector, soft: bool) -> int:
        seen.append(selector.tags)
        return 1

    state = PurgeState(tmp_path / "seq")

    async def connected_session() -> tuple[NodeSession, asyncio.Task[None]]:
        session = NodeSession(
            settings_for(live),
            NodeIdentity(node_id="eu-1-a", region="eu-1"),
            apply=lambda assignment, modules: None,
            store=MemoryModuleStore(),
            purge=carry_out,
            purge_state=state,
        )
        task = asyncio.create_task(session.run())
        await session.wait_until(lambda s: s.connected, 10)
        return session, task

    await purge(live, "before-it-came")  # an empty cache needs none of the older purges
    session, task = await connected_session()
    assert (await purge(live, "while-there")).regions[0].nodes_done == 1
    task.cancel()
    await asyncio.wait([task])
    missed = await purge(live, "while-away")
    assert not missed.regions  # no node was connected
    session, task = await connected_session()
    try:
        await session.wait_until(lambda s: s.stats.purges == 1, 10)
    finally:
        task.cancel()
        await asyncio.wait([task])
    assert seen == [("while-there",), ("while-away",)]
    assert PurgeState(tmp_path / "seq", cache_empty=False).sequence == 3


def settings_for(live: LiveControlPlane) -> SessionSettings:
    return SessionSettings(target=live.address, token=live.tokens["node"], backoff=FAST)
