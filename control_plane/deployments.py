"""Deployments in memory: per-node progress, and how a deployment is shown on the wire."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
    """One deployment and, per targeted node, (region, state, NACK error)."""

    id: int
    record: DeploymentRecord
    selector: common_pb2.Selector
    app: apps_pb2.AppVersion
    progress: dict[str, tuple[str, Progress.State.ValueType, common_pb2.ErrorDetail | None]]


def timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def render_deployment(
    found: Deployment, status_of: Callable[[str], nodes_pb2.NodeStatus.ValueType]
) -> deployments_pb2.Deployment:
    """The wire form; ``done`` once no targeted node is pending."""
    message = deployments_pb2.Deployment(
        id=str(found.id),
        app_name=found.record.app_name,
        app_version=found.record.app_version,
        target=found.selector,
    )
    message.created_at.CopyFrom(timestamp(found.record.created_at))
    done = True
    for node_id, (region, state, error) in sorted(found.progress.items(), key=lambda i: (i[1][0], i[0])):
        progress = message.nodes.add(
            node_id=node_id, region=region, state=state, node_status=status_of(node_id)
        )
        if error is not None:
            progress.error.CopyFrom(error)
        done = done and state != Progress.STATE_PENDING
    message.done = done
    return message
