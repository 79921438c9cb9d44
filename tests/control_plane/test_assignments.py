"""Pure decisions: which deployment a node should run, and how its session stands."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given
from hypothesis import strategies as st

from control_plane.assignments import desired_deployment, selector_matches, selector_problem, session_status
from protos.edgecdn.v1 import common_pb2, nodes_pb2

REGIONS = ["eu-1", "us-1", "ap-1"]
NODES = ["a", "b", "c"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Dep:
    id: int
    selector: common_pb2.Selector


selectors = st.one_of(
    st.just(common_pb2.Selector(all=True)),
    st.lists(st.sampled_from(REGIONS), min_size=1, max_size=2).map(lambda r: common_pb2.Selector(regions=r)),
    st.lists(st.sampled_from(NODES), min_size=1, max_size=2).map(lambda n: common_pb2.Selector(node_ids=n)),
)


@given(st.lists(selectors, max_size=8), st.sampled_from(NODES), st.sampled_from(REGIONS), st.randoms())
def test_the_newest_matching_deployment_wins(
    chosen: list[common_pb2.Selector], node: str, region: str, rnd: object
) -> None:
    deployments = [Dep(id=i + 1, selector=s) for i, s in enumerate(chosen)]
    shuffled = list(deployments)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    desired = desired_deployment(shuffled, node_id=node, region=region)
    matching = [d for d in deployments if selector_matches(d.selector, node_id=node, region=region)]
    assert desired == (max(matching, key=lambda d: d.id) if matching else None)
    assert all(selector_problem(d.selector) is None for d in deployments)


def test_selector_problems() -> None:
    assert selector_problem(common_pb2.Selector()) is not None
    assert selector_problem(common_pb2.Selector(all=True, node_ids=["a"])) is not None
    assert selector_problem(common_pb2.Selector(regions=[""])) is not None


@given(st.floats(min_value=0, max_value=100), st.floats(min_value=0.01, max_value=10), st.integers(1, 5))
def test_status_is_unreachable_only_after_the_allowed_silence(
    since: float, interval: float, missed: int
) -> None:
    status = session_status(
        connected=True, seconds_since_heard=since, heartbeat_interval_s=interval, missed_allowed=missed
    )
    expected = nodes_pb2.NODE_STATUS_UNREACHABLE if since > interval * missed else nodes_pb2.NODE_STATUS_READY
    assert status == expected
    assert (
        session_status(
            connected=False, seconds_since_heard=0, heartbeat_interval_s=interval, missed_allowed=missed
        )
        == nodes_pb2.NODE_STATUS_DISCONNECTED
    )
