"""The live node inventory, kept by watching the control plane (``NodeService/WatchNodes``).

Envoy-style consumers (the router) need the set of nodes *now*: the watch sends a snapshot,
``SNAPSHOT_END``, then every change. A (re)connection's snapshot is collected apart and
replaces the known set in one step at ``SNAPSHOT_END``, so a consumer never sees a half-built
inventory; while the control plane is away, the last known set stays in force.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Mapping, Sequence
from types import MappingProxyType

import grpc

from cpclient.backoff import Backoff
from cpclient.channel import TlsSettings, auth_metadata, open_channel
from protos.edgecdn.v1 import nodes_pb2, nodes_pb2_grpc

logger = logging.getLogger(__name__)

Kind = nodes_pb2.NodeEvent.Kind
InventoryListener = Callable[[Mapping[str, nodes_pb2.NodeInfo]], None]


class NodeInventory:
    """Node id -> ``NodeInfo``, live. ``run()`` keeps it current until stopped."""

    def __init__(
        self,
        target: str,
        token: str,
        *,
        regions: Sequence[str] = (),
        tls: TlsSettings | None = None,
        backoff: Backoff | None = None,
        on_change: InventoryListener | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self._target = target
        self._metadata = auth_metadata(token)
        self._regions = list(regions)
        self._tls = tls
        self._backoff = backoff or Backoff()
        self._on_change = on_change
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._nodes: dict[str, nodes_pb2.NodeInfo] = {}
        self._synced = asyncio.Event()
        self.last_error = ""

    @property
    def nodes(self) -> Mapping[str, nodes_pb2.NodeInfo]:
        return MappingProxyType(self._nodes)

    @property
    def synced(self) -> bool:
        """True once a snapshot has been received (the set may be stale while disconnected)."""
        return self._synced.is_set()

    async def wait_synced(self, timeout_s: float) -> None:
        async with asyncio.timeout(timeout_s):
            await self._synced.wait()

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Watch, and re-watch with back-off after any failure, until ``stop`` is set."""
        stop = stop or asyncio.Event()
        attempt = 0
        while not stop.is_set():
            watching = asyncio.create_task(self._watch_once(), name="cpclient-inventory-watch")
            stopped = asyncio.create_task(stop.wait(), name="cpclient-inventory-stop")
            try:
                await asyncio.wait({watching, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                stopped.cancel()
                if not watching.done():
                    watching.cancel()
                    await asyncio.wait({watching})
            if watching.cancelled():
                return
            error = watching.exception()
            if error is not None and not isinstance(error, (grpc.aio.AioRpcError, OSError, TimeoutError)):
                raise error
            self.last_error = "the control plane ended the watch" if error is None else _describe(error)
            attempt = 0 if error is None and watching.result() else attempt + 1
            delay = self._backoff.delay(attempt, self._rng)
            logger.info("node inventory: %s; watching again in %.2f s", self.last_error, delay)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _watch_once(self) -> bool:
        """One watch; True when it delivered a snapshot (so the next retry starts fresh)."""
        channel = open_channel(self._target, self._tls)
        snapshot: dict[str, nodes_pb2.NodeInfo] | None = {}
        got_snapshot = False
        try:
            call = nodes_pb2_grpc.NodeServiceStub(channel).WatchNodes(
                nodes_pb2.WatchNodesRequest(regions=self._regions), metadata=self._metadata
            )
            async for event in call:
                if event.kind == Kind.KIND_SNAPSHOT and snapshot is not None:
                    snapshot[event.node.node_id] = event.node
                elif event.kind == Kind.KIND_SNAPSHOT_END and snapshot is not None:
                    self._nodes = snapshot
                    snapshot = None
                    got_snapshot = True
                    self._synced.set()
                    self._changed()
                elif event.kind == Kind.KIND_UPSERT and snapshot is None:
                    self._nodes[event.node.node_id] = event.node
                    self._changed()
                elif event.kind == Kind.KIND_REMOVE and snapshot is None:
                    self._nodes.pop(event.node.node_id, None)
                    self._changed()
        finally:
            await channel.close()
        return got_snapshot

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.nodes)


def _describe(error: BaseException) -> str:
    if isinstance(error, grpc.aio.AioRpcError):
        return f"{error.code().name}: {error.details()}"
    return f"{type(error).__name__}: {error}"
