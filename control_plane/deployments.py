"""Deployments in memory: per-node progress, and how a deployment is shown on the wire."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from google.protobuf.timestamp_pb2 import Timestamp

from control_plane.records import DeploymentRecord
from protos.edgecdn.v1 import apps_pb2, common_pb2, deployments_pb2, nodes_pb2

Progress = deployments_pb2.NodeProgress

STATES: dict[str, Progress.State.ValueType] = {
    "pending": Progress.STATE_PENDING,
    "acked": Progress.STATE_ACKED,
    "nacked": Progress.STATE_NACKED,
}
STATE_NAMES = {value: key for key, value in STATES.items()}


@dataclass(slots=True)
class Deployment:
    """One deployment and, per targeted node, (region, state, NACK error). ``pending`` counts
    the targeted nodes still pending: kept as progress changes (``set``), so that telling an
    unfinished deployment never walks a progress of 10,000 nodes.

    The wire form is kept too, built once and changed in place (``set``; node statuses at
    render time, only those that changed): a watched deployment is rendered every 50 ms, and
    building 10,000 node entries afresh each time cost ~20 ms, measured, most of the event
    loop while 10,000 nodes ACK. The statuses are looked up only when some node's status
    changed since the last render (``statuses_version``): during a deploy they seldom do,
    and looking up 10,000 of them was most of what a render still cost."""

    id: int
    record: DeploymentRecord
    selector: common_pb2.Selector
    app: apps_pb2.AppVersion
    progress: dict[str, tuple[str, Progress.State.ValueType, common_pb2.ErrorDetail | None]]
    pending: int = field(init=False)
    _wire: deployments_pb2.Deployment | None = field(init=False, default=None)
    _position: dict[str, int] = field(init=False, default_factory=dict)
    _shown_status: list[nodes_pb2.NodeStatus.ValueType] = field(init=False, default_factory=list)
    _shown_statuses_version: int | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        # In the order the wire shows (region, node id), once: progress only ever changes a
        # node's entry in place (``set``), so a render never sorts.
        self.progress = dict(sorted(self.progress.items(), key=lambda item: (item[1][0], item[0])))
        self.pending = sum(state == Progress.STATE_PENDING for _, state, _ in self.progress.values())

    def set(
        self, node_id: str, state: Progress.State.ValueType, error: common_pb2.ErrorDetail | None
    ) -> bool:
        """Record a targeted node's new state; False when nothing changed (or not targeted)."""
        current = self.progress.get(node_id)
        if current is None or (current[1] == state and error is None):
            return False
        self.pending += (state == Progress.STATE_PENDING) - (current[1] == Progress.STATE_PENDING)
        self.progress[node_id] = (current[0], state, error)
        if self._wire is not None:
            entry = self._wire.nodes[self._position[node_id]]
            entry.state = state
            if error is None:
                entry.ClearField("error")
            else:
                entry.error.CopyFrom(error)
        return True

    def wire(
        self,
        status_of: Callable[[str], nodes_pb2.NodeStatus.ValueType],
        *,
        statuses_version: int | None = None,
    ) -> deployments_pb2.Deployment:
        """The wire form (a copy: the caller may keep it); ``done`` once no node is pending.
        ``statuses_version``: a number that changes whenever any node's status does (None:
        look every status up)."""
        if self._wire is None:
            self._wire = _fresh_wire(self)
            self._position = {node_id: i for i, node_id in enumerate(self.progress)}
            self._shown_status = [nodes_pb2.NODE_STATUS_UNSPECIFIED] * len(self.progress)
        if statuses_version is None or statuses_version != self._shown_statuses_version:
            shown = self._shown_status
            for i, node_id in enumerate(self.progress):
                status = status_of(node_id)
                if shown[i] != status:
                    shown[i] = status
                    self._wire.nodes[i].node_status = status
            self._shown_statuses_version = statuses_version
        self._wire.done = self.pending == 0
        copy = deployments_pb2.Deployment()
        copy.CopyFrom(self._wire)
        return copy


def _fresh_wire(found: Deployment) -> deployments_pb2.Deployment:
    message = deployments_pb2.Deployment(
        id=str(found.id),
        app_name=found.record.app_name,
        app_version=found.record.app_version,
        target=found.selector,
    )
    message.created_at.CopyFrom(timestamp(found.record.created_at))
    for node_id, (region, state, error) in found.progress.items():  # kept in (region, node) order
        progress = message.nodes.add(node_id=node_id, region=region, state=state)
        if error is not None:
            progress.error.CopyFrom(error)
    return message


def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def render_deployment(
    found: Deployment,
    status_of: Callable[[str], nodes_pb2.NodeStatus.ValueType],
    *,
    statuses_version: int | None = None,
) -> deployments_pb2.Deployment:
    """The wire form; ``done`` once no targeted node is pending (``Deployment.wire``)."""
    return found.wire(status_of, statuses_version=statuses_version)
