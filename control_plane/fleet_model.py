"""What the fleet holds per node, and the small values it hands out (census, watchers)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from control_plane.records import NodeRecord
from control_plane.sessions import Session
from protos.edgecdn.v1 import common_pb2, nodes_pb2

WATCH_QUEUE_SIZE = 10_000


@dataclass(slots=True)
class FleetNode:
    """A known node as the fleet holds it: its record, status, load and session."""

    record: NodeRecord
    status: nodes_pb2.NodeStatus.ValueType = nodes_pb2.NODE_STATUS_DISCONNECTED
    load: common_pb2.Load = field(default_factory=common_pb2.Load)
    last_heard: float = 0.0
    session: Session | None = None
    desired_version: str = ""
    # Wall time of the last heartbeat, kept beside the (immutable) record so that a heartbeat
    # does not rebuild it; ``Fleet._fresh_record`` folds it in when the record is read or written.
    heartbeat_at: float = 0.0


STATUS_NAMES = {
    nodes_pb2.NODE_STATUS_READY: "ready",
    nodes_pb2.NODE_STATUS_UNREACHABLE: "unreachable",
    nodes_pb2.NODE_STATUS_DISCONNECTED: "disconnected",
}


@dataclass(frozen=True, slots=True, kw_only=True)
class FleetCensus:
    """Counts of one moment (``Fleet.census``)."""

    nodes: dict[tuple[str, str], int]
    sessions: dict[str, int]
    deployments: int
    deployments_unfinished: int


@dataclass(slots=True)
class NodeWatch:
    """One WatchNodes subscriber: events to send, and whether it fell behind."""

    regions: frozenset[str]
    queue: asyncio.Queue[nodes_pb2.NodeEvent] = field(
        default_factory=lambda: asyncio.Queue(maxsize=WATCH_QUEUE_SIZE)
    )
    overflowed: bool = False
