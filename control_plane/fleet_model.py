"""What the fleet holds per node, and the small values it hands out (census, watchers)."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterable
from dataclasses import dataclass, field

from control_plane.deployments import Deployment, timestamp
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
    # does not rebuild it; ``fresh_record`` folds it in when the record is read or written.
    heartbeat_at: float = 0.0

    def fresh_record(self) -> NodeRecord:
        """The node's record with its latest heartbeat time."""
        if self.heartbeat_at > self.record.last_heartbeat:
            self.record = dataclasses.replace(self.record, last_heartbeat=self.heartbeat_at)
        return self.record

    def info(self, *, vouched: bool) -> nodes_pb2.NodeInfo:
        """The node as ListNodes and WatchNodes show it; ``vouched``: a credential the control
        plane holds may be this node."""
        r = self.fresh_record()
        info = nodes_pb2.NodeInfo(
            node_id=r.node_id,
            region=r.region,
            pop=r.pop,
            address=r.address,
            status=self.status,
            app_name=r.app_name,
            app_version=r.app_version,
            assignment_version=r.assignment_version,
            desired_version=self.desired_version,
            load=self.load,
            capacity_rps=r.capacity_rps,
            vouched=vouched,
        )
        if r.last_heartbeat:
            info.last_heartbeat.CopyFrom(timestamp(r.last_heartbeat))
        if r.last_error is not None:
            info.last_error.ParseFromString(r.last_error)
        return info


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


def take_census(nodes: Iterable[FleetNode], deployments: Iterable[Deployment]) -> FleetCensus:
    """Nodes by (region, status) and open sessions by region, deployments, and how many of
    them some targeted node has not answered yet: one pass, for /metrics."""
    by_status: dict[tuple[str, str], int] = {}
    sessions: dict[str, int] = {}
    for node in nodes:
        key = (node.record.region, STATUS_NAMES.get(node.status, "unspecified"))
        by_status[key] = by_status.get(key, 0) + 1
        if node.session is not None and not node.session.closed:
            sessions[node.record.region] = sessions.get(node.record.region, 0) + 1
    counted = [deployment.pending for deployment in deployments]
    return FleetCensus(
        nodes=by_status,
        sessions=sessions,
        deployments=len(counted),
        deployments_unfinished=sum(1 for pending in counted if pending),
    )
