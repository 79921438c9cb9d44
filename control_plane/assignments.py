"""Pure decisions about what each node should run and how its session stands (no I/O).

A node's desired state is the most recent deployment whose selector matches it, so a
deployment to a region also reaches nodes that join the region later, and assignment
versions (deployment ids) only ever grow for any one node.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Protocol, TypeVar

from protos.edgecdn.v1 import common_pb2, nodes_pb2


class HasSelector(Protocol):
    """Anything with a deployment id and a selector (in-memory deployments, tests)."""

    @property
    def id(self) -> int: ...

    @property
    def selector(self) -> common_pb2.Selector: ...


D = TypeVar("D", bound=HasSelector)


def selector_problem(selector: common_pb2.Selector) -> str | None:
    """Why ``selector`` is unusable, or None: exactly one of all, regions, node_ids."""
    chosen = [bool(selector.all), bool(selector.regions), bool(selector.node_ids)]
    if sum(chosen) != 1:
        return "set exactly one of all, regions or node_ids"
    if any(not region for region in selector.regions) or any(not node for node in selector.node_ids):
        return "region and node ids must not be empty"
    return None


def selector_matches(selector: common_pb2.Selector, *, node_id: str, region: str) -> bool:
    return selector.all or region in selector.regions or node_id in selector.node_ids


def desired_deployment(deployments: Sequence[D], *, node_id: str, region: str) -> D | None:
    """The newest deployment (highest id) that selects the node, or None."""
    for deployment in sorted(deployments, key=lambda d: d.id, reverse=True):
        if selector_matches(deployment.selector, node_id=node_id, region=region):
            return deployment
    return None


def session_status(
    *, connected: bool, seconds_since_heard: float, heartbeat_interval_s: float, missed_allowed: int
) -> nodes_pb2.NodeStatus.ValueType:
    """READY while heartbeats arrive; UNREACHABLE after ``missed_allowed`` intervals of silence."""
    if not connected:
        return nodes_pb2.NODE_STATUS_DISCONNECTED
    if seconds_since_heard > heartbeat_interval_s * missed_allowed:
        return nodes_pb2.NODE_STATUS_UNREACHABLE
    return nodes_pb2.NODE_STATUS_READY


def hello_problem(hello: nodes_pb2.NodeHello) -> str | None:
    """Why a hello is unacceptable, or None."""
    if not hello.node_id or len(hello.node_id) > 128:
        return "hello.node_id must be 1..128 characters"
    if not hello.region:
        return "hello.region must not be empty"
    return None


def regions_filter(regions: Iterable[str]) -> frozenset[str]:
    return frozenset(r for r in regions if r)
