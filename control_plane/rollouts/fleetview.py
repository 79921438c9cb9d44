"""What the rollout driver reads from the fleet, as plain values: pure functions over the wire
messages the fleet already produces (node list, deployment progress), tested directly.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from control_plane.rollouts.model import NOTHING
from protos.edgecdn.v1 import deployments_pb2, nodes_pb2

Progress = deployments_pb2.NodeProgress


@dataclass(frozen=True, slots=True, kw_only=True)
class DeployProgress:
    """A deployment's nodes: those it targets, those that ACKed, and the first NACK."""

    expected: tuple[str, ...]
    acked: tuple[str, ...]
    nack: tuple[str, str] | None  # (node id, error)

    @property
    def done(self) -> bool:
        return len(self.acked) == len(self.expected)


def deploy_progress(deployment: deployments_pb2.Deployment) -> DeployProgress:
    expected = tuple(sorted(node.node_id for node in deployment.nodes))
    acked = tuple(sorted(node.node_id for node in deployment.nodes if node.state == Progress.STATE_ACKED))
    nack = next(
        (
            (node.node_id, node.error.message or node.error.code or "refused")
            for node in sorted(deployment.nodes, key=lambda n: n.node_id)
            if node.state == Progress.STATE_NACKED
        ),
        None,
    )
    return DeployProgress(expected=expected, acked=acked, nack=nack)


def region_versions(
    nodes: Iterable[nodes_pb2.NodeInfo],
    app: str,
    desired_version_of: Callable[[str], tuple[str, str] | None],
    regions: Iterable[str],
) -> dict[str, str]:
    """The version of ``app`` each region runs: what its nodes are assigned (or, with no
    assignment, run); the most common one when they differ; NOTHING for none.

    ``desired_version_of(deployment_id)`` gives a deployment's (app, version).
    """
    per_region: dict[str, Counter[str]] = {region: Counter() for region in regions}
    for node in nodes:
        if node.region not in per_region:
            continue
        assigned = desired_version_of(node.desired_version) if node.desired_version else None
        name, version = assigned if assigned is not None else (node.app_name, node.app_version)
        per_region[node.region][version if name == app else NOTHING] += 1
    return {
        region: (counts.most_common(1)[0][0] if counts else NOTHING) for region, counts in per_region.items()
    }


def baseline_version(initial_versions: Mapping[str, str], regions: Iterable[str]) -> str | None:
    """The version most of ``regions`` ran before the rollout (the canary baseline), if any."""
    counts = Counter(initial_versions.get(region, NOTHING) for region in regions)
    counts.pop(NOTHING, None)
    return counts.most_common(1)[0][0] if counts else None
