"""What a deployment keeps as its progress changes, so that neither /metrics nor a watcher
walks 10,000 nodes afresh: its pending count always equals a fresh count, and its wire form,
changed in place, always equals one built from scratch (states, errors, node statuses, order)."""

from __future__ import annotations

from typing import TypeAlias

from hypothesis import given
from hypothesis import strategies as st

from control_plane.deployments import Deployment, Progress, render_deployment
from control_plane.records import DeploymentRecord
from protos.edgecdn.v1 import apps_pb2, common_pb2, nodes_pb2

State: TypeAlias = "Progress.State.ValueType"
Status: TypeAlias = "nodes_pb2.NodeStatus.ValueType"

STATES: tuple[State, ...] = (Progress.STATE_PENDING, Progress.STATE_ACKED, Progress.STATE_NACKED)
STATUSES: tuple[Status, ...] = (
    nodes_pb2.NODE_STATUS_READY,
    nodes_pb2.NODE_STATUS_UNREACHABLE,
    nodes_pb2.NODE_STATUS_DISCONNECTED,
)
nodes = st.dictionaries(
    st.text(alphabet="abcdef", min_size=1, max_size=4),
    st.tuples(st.sampled_from(["eu", "us", "ap"]), st.sampled_from(STATES)),
    max_size=12,
)
changes = st.lists(
    st.tuples(st.text(alphabet="abcdef", min_size=1, max_size=4), st.sampled_from(STATES), st.booleans()),
    max_size=30,
)


def deployment(targets: dict[str, tuple[str, State]]) -> Deployment:
    return Deployment(
        id=1,
        record=DeploymentRecord(id=1, app_name="a", app_version="1", selector=b"", created_at=0.0),
        selector=common_pb2.Selector(all=True),
        app=apps_pb2.AppVersion(name="a", version="1"),
        progress={node: (region, state, None) for node, (region, state) in targets.items()},
    )


@given(targets=nodes, steps=changes)
def test_pending_is_always_the_count_of_pending_nodes(
    targets: dict[str, tuple[str, State]], steps: list[tuple[str, State, bool]]
) -> None:
    found = deployment(targets)
    statuses: dict[str, Status] = {}
    for step, (node, state, with_error) in enumerate(steps):
        if step % 3 == 0:  # render between changes, as a watcher does, with statuses changing
            statuses[node] = STATUSES[step % len(STATUSES)]
            assert_wire_is_fresh(found, statuses)
        error = common_pb2.ErrorDetail(code="x", message=str(step)) if with_error else None
        before = found.progress.get(node)
        changed = found.set(node, state, error)
        assert changed == (before is not None and (error is not None or before[1] != state))
        assert found.pending == sum(s == Progress.STATE_PENDING for _, s, _ in found.progress.values())
        assert set(found.progress) == set(targets)  # a node not targeted is never added
    assert_wire_is_fresh(found, statuses)


def assert_wire_is_fresh(found: Deployment, statuses: dict[str, Status]) -> None:
    rendered = render_deployment(found, lambda node: statuses.get(node, nodes_pb2.NODE_STATUS_READY))
    assert [(n.region, n.node_id) for n in rendered.nodes] == sorted(
        (region, node) for node, (region, _, _) in found.progress.items()
    )
    for entry in rendered.nodes:
        _, state, error = found.progress[entry.node_id]
        assert entry.state == state
        assert entry.error == (error or common_pb2.ErrorDetail())
        assert entry.HasField("error") == (error is not None)
        assert entry.node_status == statuses.get(entry.node_id, nodes_pb2.NODE_STATUS_READY)
    assert rendered.done == (found.pending == 0)
    rendered.nodes.add(node_id="mutated by the caller")  # a copy: the kept form is untouched


@given(
    targets=nodes,
    steps=st.lists(
        st.tuples(st.text(alphabet="abcdef", min_size=1, max_size=4), st.sampled_from(STATUSES)), max_size=20
    ),
)
def test_statuses_are_looked_up_only_when_some_status_changed(
    targets: dict[str, tuple[str, State]], steps: list[tuple[str, Status]]
) -> None:
    """With ``statuses_version`` (the fleet's count of status changes), a render looks the
    statuses up only when it moved, and still shows every node's current status."""
    found = deployment(targets)
    statuses: dict[str, Status] = {}
    version = 0
    lookups: list[str] = []

    def status_of(node: str) -> Status:
        lookups.append(node)
        return statuses.get(node, nodes_pb2.NODE_STATUS_READY)

    for node, status in steps:
        if statuses.get(node, nodes_pb2.NODE_STATUS_READY) != status:
            statuses[node] = status
            version += 1
        lookups.clear()
        rendered = render_deployment(found, status_of, statuses_version=version)
        assert {n.node_id: n.node_status for n in rendered.nodes} == {
            node: statuses.get(node, nodes_pb2.NODE_STATUS_READY) for node in targets
        }
        lookups.clear()
        render_deployment(found, status_of, statuses_version=version)  # nothing moved since
        assert lookups == []
