"""Whether an app version may be removed: who still runs it, would get it, or may roll back to it.

``version_users`` is pure: given the nodes, the deployments and the rollouts it says, in
words an operator can act on, what keeps ``NAME@VERSION`` in use. A version is in use while

- a node that is not disconnected reports running it;
- a deployment of it is still in force: it is the newest deployment for some known node,
  or its selector would give it to a node that joins later (``all``, a region, a node id
  no later deployment covers);
- a rollout that has not ended rolls it out, or started from it (a rollback restores it).

Everything else about the version is history: old deployment records and ended rollouts
keep naming it, and the control plane reads them without the version (fleet.py skips a
deployment whose version is gone).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from control_plane.assignments import desired_deployment
from control_plane.db import Database
from control_plane.fleet import Fleet
from control_plane.rollouts.driver import RolloutDriver
from control_plane.rollouts.model import Rollout
from protos.edgecdn.v1 import common_pb2, nodes_pb2

# Names listed in a phrase at most; the rest are counted ("and 3 more").
LISTED = 5


@dataclass(frozen=True, slots=True)
class NodeView:
    """A node as far as removal cares: where it is and what it runs."""

    node_id: str
    region: str
    app_name: str
    app_version: str
    connected: bool


@dataclass(frozen=True, slots=True)
class DeploymentView:
    """A deployment record: which version, to which selector."""

    id: int
    app_name: str
    app_version: str
    selector: common_pb2.Selector


def _covers(
    later: common_pb2.Selector, *, region: str = "", node_id: str = "", everything: bool = False
) -> bool:
    if later.all:
        return True
    if everything:
        return False
    return (bool(region) and region in later.regions) or (bool(node_id) and node_id in later.node_ids)


def _in_force(deployment: DeploymentView, later: Sequence[DeploymentView], known: set[str]) -> bool:
    """True when a node joining later would still be given ``deployment``."""
    selector = deployment.selector
    newer = [d.selector for d in later if d.id > deployment.id]
    if selector.all and not any(_covers(s, everything=True) for s in newer):
        return True
    if any(not any(_covers(s, region=r) for s in newer) for r in selector.regions):
        return True
    # A known node's desired deployment is judged by region too (desired_deployment).
    unknown = [n for n in selector.node_ids if n not in known]
    return any(not any(_covers(s, node_id=n) for s in newer) for n in unknown)


def listing(items: Sequence[str], *, limit: int = LISTED) -> str:
    """The first ``limit`` items, comma-separated, and how many more there are (never a
    silently cut list): "a, b, c, d, e and 3 more"."""
    shown = ", ".join(items[:limit])
    return f"{shown} and {len(items) - limit} more" if len(items) > limit else shown


def version_users(
    name: str,
    version: str,
    *,
    nodes: Iterable[NodeView],
    deployments: Sequence[DeploymentView],
    rollouts: Iterable[Rollout],
) -> list[str]:
    """What keeps ``name@version`` in use, one phrase each; empty when it may be removed."""
    users: list[str] = []
    nodes = list(nodes)
    running = sorted(
        n.node_id for n in nodes if n.connected and (n.app_name, n.app_version) == (name, version)
    )
    if running:
        users.append(f"running on {len(running)} node(s) ({listing(running)})")
    desired = sorted(
        {
            found.id
            for n in nodes
            if (found := desired_deployment(deployments, node_id=n.node_id, region=n.region)) is not None
            and (found.app_name, found.app_version) == (name, version)
        }
    )
    known = {n.node_id for n in nodes}
    mine = [d for d in deployments if (d.app_name, d.app_version) == (name, version)]
    in_force = sorted(set(desired) | {d.id for d in mine if _in_force(d, deployments, known)})
    if in_force:
        users.append(f"deployment(s) {listing([str(i) for i in in_force])} still in force")
    for rollout in rollouts:
        if rollout.state.terminal or rollout.spec.app != name:
            continue
        if rollout.spec.version == version:
            users.append(f"rollout {rollout.id} ({rollout.state.value}) rolls it out")
        elif version in set(rollout.initial_versions.values()) | set(rollout.previous_versions.values()):
            users.append(f"rollout {rollout.id} ({rollout.state.value}) would roll back to it")
    return users


class AppUsage:
    """``version_users`` over the live fleet, the deployment records and the rollouts."""

    def __init__(self, db: Database, fleet: Fleet, rollouts: RolloutDriver) -> None:
        self._db = db
        self._fleet = fleet
        self._rollouts = rollouts

    def __call__(self, name: str, version: str) -> list[str]:
        nodes = [
            NodeView(
                node_id=n.node_id,
                region=n.region,
                app_name=n.app_name,
                app_version=n.app_version,
                connected=n.status != nodes_pb2.NODE_STATUS_DISCONNECTED,
            )
            for n in self._fleet.list_nodes()
        ]
        deployments = [
            DeploymentView(
                id=r.id,
                app_name=r.app_name,
                app_version=r.app_version,
                selector=common_pb2.Selector.FromString(r.selector),
            )
            for r in self._db.list_deployments()
        ]
        return version_users(
            name, version, nodes=nodes, deployments=deployments, rollouts=self._rollouts.list_rollouts()
        )
