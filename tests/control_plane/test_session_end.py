"""A node's session ends on the control plane however its stream ends.

Two ways it did not, both seen under load in CI as a node that never showed DISCONNECTED:

- grpc.aio drives a streaming handler with ``async for`` and never closes it: a client
  cancel that lands while the server is writing (a write held up by flow control, or one
  whose completion is late) ends grpc's task and leaves the handler suspended at its
  ``yield`` until the garbage collector finds it (``StreamClosingInterceptor``).
- grpc cancels the handler's task when the node's cancel reaches it; the handler may be
  winding down already (its reads ended first), and the cancel then landed at an await in
  its cleanup, before the session's end.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncGenerator, AsyncIterator, Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import grpc
import pytest

from control_plane.apps import AppRegistry
from control_plane.blobs import BlobStore
from control_plane.compile_check import ModuleValidator
from control_plane.db import Database
from control_plane.fleet import Fleet
from control_plane.modules import ModuleRegistry
from control_plane.node_services import NodeSessionServicer
from protos.edgecdn.v1 import cache_pb2, cache_pb2_grpc, nodes_pb2, nodes_pb2_grpc
from tests.control_plane.support import LiveControlPlane

# One purge as large as a purge may be: 256 URLs of 2000 characters.
LARGE_PURGE = cache_pb2.PurgeCacheRequest(
    urls=[f"/{i:04d}/" + "x" * 1994 for i in range(256)], timeout_seconds=0.5
)
# 12 MiB of purges: past what the client's transport takes in without the node reading.
PURGES = 24


@contextmanager
def handlers_kept_alive() -> Iterator[None]:
    """Keep every async generator started meanwhile alive, as a reference cycle keeps one that
    grpc abandoned until the cyclic collector runs (seconds later under load). Entered inside
    the running loop: the loop installs its own hooks each time it starts."""
    firstiter, finalizer = sys.get_asyncgen_hooks()
    kept: list[AsyncGenerator[object, None]] = []

    def keep(generator: AsyncGenerator[object, None]) -> None:
        kept.append(generator)
        if firstiter is not None:
            firstiter(generator)

    sys.set_asyncgen_hooks(firstiter=keep, finalizer=finalizer)
    try:
        yield
    finally:
        sys.set_asyncgen_hooks(firstiter=firstiter, finalizer=finalizer)
        kept.clear()


async def read_until(
    watch: grpc.aio.UnaryStreamCall[nodes_pb2.WatchNodesRequest, nodes_pb2.NodeEvent], status: int
) -> None:
    while True:
        event = await watch.read()
        assert isinstance(event, nodes_pb2.NodeEvent)
        if event.node.node_id == "stalled" and event.node.status == status:
            return


async def test_a_node_cancelling_while_the_server_writes_is_disconnected(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    with handlers_kept_alive():
        watch = nodes_pb2_grpc.NodeServiceStub(channel).WatchNodes(
            nodes_pb2.WatchNodesRequest(), metadata=live.md("viewer"), timeout=10
        )
        connect = nodes_pb2_grpc.NodeSessionServiceStub(channel).Connect(metadata=live.md("node"))
        hello = nodes_pb2.NodeHello(node_id="stalled", region="eu-1")
        await connect.write(nodes_pb2.NodeMessage(hello=hello))
        params = await connect.read()
        assert isinstance(params, nodes_pb2.ControlMessage)
        assert params.HasField("params")
        await read_until(watch, nodes_pb2.NODE_STATUS_READY)
        # The node reads nothing more: the writes of these purges to it stall on flow control.
        purge = cache_pb2_grpc.CacheServiceStub(channel).PurgeCache
        operator = live.md("operator")
        answers = await asyncio.gather(*(purge(LARGE_PURGE, metadata=operator) for _ in range(PURGES)))
        assert all(list(answer.regions[0].late_node_ids) == ["stalled"] for answer in answers)
        connect.cancel()
        await read_until(watch, nodes_pb2.NODE_STATUS_DISCONNECTED)
        watch.cancel()


@pytest.fixture
def fleet(tmp_path: Path) -> Iterator[Fleet]:
    with closing(Database(tmp_path / "cp.sqlite3")) as db, ModuleValidator() as validator:
        apps = AppRegistry(db, ModuleRegistry(db, BlobStore(tmp_path / "modules"), validator))
        yield Fleet(db, apps, heartbeat_interval_s=1.0, missed_allowed=3)


async def test_a_cancel_landing_in_the_handlers_cleanup_still_ends_the_session(fleet: Fleet) -> None:
    servicer = NodeSessionServicer(fleet)
    handler: asyncio.Task[None]

    async def node_messages() -> AsyncIterator[nodes_pb2.NodeMessage]:
        yield nodes_pb2.NodeMessage(hello=nodes_pb2.NodeHello(node_id="n1", region="eu-1"))
        try:
            await asyncio.Event().wait()  # the node sends nothing more
        except asyncio.CancelledError:
            # The handler is cleaning up (it cancelled its reader, this read) and waits for
            # its reader to finish: a cancel of its task lands right there.
            handler.cancel()
            raise

    async def serve() -> None:
        context: Any = None  # Connect asks nothing of it on this path
        async for _ in servicer.Connect(node_messages(), context):
            pass

    watch = fleet.watch_nodes(frozenset())
    handler = asyncio.create_task(serve())
    while (event := await watch.queue.get()).node.node_id != "n1":
        pass
    assert event.node.status == nodes_pb2.NODE_STATUS_READY
    handler.cancel()  # the node's stream ended
    await asyncio.wait([handler])
    assert fleet.list_nodes()[0].status == nodes_pb2.NODE_STATUS_DISCONNECTED
