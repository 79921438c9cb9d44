"""The routing policy: nearest region by modeled RTT, weighted rendezvous within a region.

Properties (Hypothesis) over random fleets and clients in the default world, then examples
of the documented decisions (home regions, pins, failover, overload, unknown location).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from geo.latency import LatencyModel
from geo.world import World, load_world
from router.policy import (
    REASONS,
    Candidate,
    ClientPlace,
    NodeView,
    RoutingPolicy,
    rendezvous_order,
    rendezvous_score,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
WORLD: World = load_world(REPO_ROOT / "deploy" / "local" / "world.toml")
REGION_IDS: tuple[str, ...] = tuple(region.id for region in WORLD.regions)
COUNTRY_CODES: tuple[str, ...] = tuple(country.code for country in WORLD.countries)
# A region an operator mistyped: the world does not know it.
STRAY_REGION = "xx-nowhere-1"

PROPERTY = settings(max_examples=200, deadline=None)

capacities = st.sampled_from([1.0, 2.0, 5.0, 100.0]) | st.floats(min_value=0.1, max_value=1e4)
utilizations = st.sampled_from([0.0, 0.5, 0.999, 1.0, 1.7]) | st.floats(min_value=0.0, max_value=2.0)
coordinates = st.tuples(
    st.floats(min_value=-90, max_value=90, allow_nan=False),
    st.floats(min_value=-180, max_value=180, allow_nan=False),
)
country_coordinates = st.sampled_from(COUNTRY_CODES).map(
    lambda code: (WORLD.country(code).latitude, WORLD.country(code).longitude)
)
locations = st.none() | coordinates | country_coordinates
addresses = st.ip_addresses(v=4).map(str) | st.text(min_size=1, max_size=16)


@st.composite
def fleets(
    draw: st.DrawFn,
    *,
    min_size: int = 1,
    max_size: int = 12,
    stray: bool = True,
    saturation: bool = True,
    down: bool = True,
) -> list[NodeView]:
    """Nodes with unique ids in random regions, some down, some over capacity."""
    regions = st.sampled_from((*REGION_IDS, STRAY_REGION) if stray else REGION_IDS)
    count = draw(st.integers(min_value=min_size, max_value=max_size))
    nodes = []
    for index in range(count):
        region = draw(regions)
        nodes.append(
            NodeView(
                node_id=f"{region}-{index}",
                region=region,
                url=f"http://127.0.0.1:{9000 + index}",
                healthy=draw(st.sampled_from([True, True, True, False])) if down else True,
                capacity_rps=draw(capacities),
                utilization=draw(utilizations) if saturation else draw(st.floats(0.0, 0.99)),
            )
        )
    return nodes


@st.composite
def clients(draw: st.DrawFn, *, pins: list[NodeView] | None = None) -> ClientPlace:
    location = draw(locations)
    pin: str | None = None
    if pins is not None:
        pin = draw(
            st.none()
            | st.sampled_from(REGION_IDS)
            | st.just("no-such-node")
            | (st.sampled_from([node.node_id for node in pins]) if pins else st.none())
        )
    return ClientPlace(
        address=draw(addresses),
        latitude=None if location is None else location[0],
        longitude=None if location is None else location[1],
        pin=pin,
    )


def place_of(code: str, address: str = "127.1.0.1", pin: str | None = None) -> ClientPlace:
    country = WORLD.country(code)
    return ClientPlace(address=address, latitude=country.latitude, longitude=country.longitude, pin=pin)


def node(
    node_id: str,
    region: str,
    *,
    healthy: bool = True,
    capacity_rps: float = 1.0,
    utilization: float = 0.0,
) -> NodeView:
    return NodeView(
        node_id=node_id,
        region=region,
        url=f"http://127.0.0.1/{node_id}",
        healthy=healthy,
        capacity_rps=capacity_rps,
        utilization=utilization,
    )


def one_per_region() -> list[NodeView]:
    return [node(f"{region}-a", region) for region in REGION_IDS]


def ids(plan: list[Candidate]) -> list[str]:
    return [candidate.node.node_id for candidate in plan]


def first_world_region(policy: RoutingPolicy, client: ClientPlace) -> str:
    """The client's nearest region of the world (all of the default world's are staffed)."""
    return policy.region_ranking(client)[0][0]


def regions_with_nodes_by_rank(
    policy: RoutingPolicy, client: ClientPlace, nodes: list[NodeView]
) -> list[str]:
    """Regions of the inventory, nearest first (regions the world does not know last)."""
    present = {n.region for n in nodes}
    ranked = [region for region, _ in policy.region_ranking(client) if region in present]
    return ranked + sorted(present - set(ranked))


# Property 1: never a down node; never an empty plan while a healthy node exists.


@PROPERTY
@given(data=st.data(), nodes=fleets(min_size=0))
def test_plan_is_exactly_the_healthy_nodes_each_once(data: st.DataObject, nodes: list[NodeView]) -> None:
    client = data.draw(clients(pins=nodes))
    plan = RoutingPolicy(WORLD).plan(client, nodes)
    assert all(candidate.node.healthy for candidate in plan)
    assert sorted(ids(plan)) == sorted(n.node_id for n in nodes if n.healthy)
    if any(n.healthy for n in nodes):
        assert plan
    assert {candidate.reason for candidate in plan} <= set(REASONS)


@PROPERTY
@given(data=st.data(), nodes=fleets(min_size=0), limit=st.integers(min_value=0, max_value=14))
def test_limit_takes_a_prefix_of_the_plan(data: st.DataObject, nodes: list[NodeView], limit: int) -> None:
    client = data.draw(clients(pins=nodes))
    policy = RoutingPolicy(WORLD)
    full = policy.plan(client, nodes)
    assert policy.plan(client, nodes, limit=limit) == full[:limit]
    assert list(policy.candidates(client, nodes)) == full


@PROPERTY
@given(client=clients(), nodes=fleets())
def test_every_node_down_gives_an_empty_plan(client: ClientPlace, nodes: list[NodeView]) -> None:
    down = [replace(n, healthy=False) for n in nodes]
    assert RoutingPolicy(WORLD).plan(client, down) == []


# Property 2: deterministic, and independent of the order the nodes come in.


@PROPERTY
@given(data=st.data(), nodes=fleets())
def test_plan_is_deterministic_and_independent_of_node_order(
    data: st.DataObject, nodes: list[NodeView]
) -> None:
    # Pins by node id (or none): a region pin has its own test below.
    client = data.draw(clients(pins=nodes))
    assume(client.pin not in REGION_IDS)
    shuffled = data.draw(st.permutations(nodes))
    first = RoutingPolicy(WORLD).plan(client, nodes)
    assert RoutingPolicy(WORLD).plan(client, nodes) == first
    assert RoutingPolicy(WORLD).plan(client, shuffled) == first
    assert RoutingPolicy(WORLD).plan(client, iter(shuffled)) == first


@PROPERTY
@given(key=addresses, nodes=fleets(stray=False), data=st.data())
def test_rendezvous_order_ignores_input_order(key: str, nodes: list[NodeView], data: st.DataObject) -> None:
    shuffled = data.draw(st.permutations(nodes))
    assert rendezvous_order(key, nodes) == rendezvous_order(key, shuffled)
    assert sorted(n.node_id for n in rendezvous_order(key, nodes)) == sorted(n.node_id for n in nodes)


@PROPERTY
@given(data=st.data(), nodes=fleets(min_size=2, down=False, saturation=False, stray=False))
def test_region_pin_is_independent_of_node_order(data: st.DataObject, nodes: list[NodeView]) -> None:
    region = data.draw(st.sampled_from(sorted({n.region for n in nodes})))
    assume(sum(n.region == region for n in nodes) >= 2)
    client = ClientPlace(address=data.draw(addresses), pin=region)
    shuffled = data.draw(st.permutations(nodes))
    policy = RoutingPolicy(WORLD)
    assert policy.plan(client, shuffled) == policy.plan(client, nodes)


def test_region_pin_orders_the_region_by_rendezvous_hash() -> None:
    nodes = [node(f"us-east-1-{letter}", "us-east-1") for letter in "abcdef"]
    client = ClientPlace(address="127.1.0.1", pin="us-east-1")
    expected = rendezvous_order(client.address, nodes)
    assert expected != nodes  # otherwise the example shows nothing
    plan = RoutingPolicy(WORLD).plan(client, nodes)
    assert ids(plan) == [n.node_id for n in expected]


# Property 3: removing a node moves only the clients that node had.


@PROPERTY
@given(
    nodes=fleets(min_size=2, stray=False), keys=st.lists(addresses, min_size=1, max_size=30), data=st.data()
)
def test_rendezvous_removal_moves_only_the_removed_nodes_keys(
    nodes: list[NodeView], keys: list[str], data: st.DataObject
) -> None:
    removed = data.draw(st.sampled_from(nodes))
    rest = [n for n in nodes if n is not removed]
    for key in keys:
        before = rendezvous_order(key, nodes)
        after = rendezvous_order(key, rest)
        # The order of the others is untouched; only the removed node's keys move.
        assert after == [n for n in before if n is not removed]
        if before[0] is not removed:
            assert after[0] is before[0]


@PROPERTY
@given(nodes=fleets(min_size=2), data=st.data())
def test_removing_a_node_changes_the_first_choice_only_for_its_clients(
    nodes: list[NodeView], data: st.DataObject
) -> None:
    removed = data.draw(st.sampled_from(nodes))
    rest = [n for n in nodes if n is not removed]
    policy = RoutingPolicy(WORLD)
    for _ in range(5):
        client = data.draw(clients(pins=rest))
        before = policy.plan(client, nodes)
        after = policy.plan(client, rest)
        if before and before[0].node is not removed:
            assert after[0].node is before[0].node
        if client.pin is None:
            # Without a pin the whole order of the others survives (reasons may change).
            assert ids(after) == [i for i in ids(before) if i != removed.node_id]


# Property 4: failover to the next nearest region with healthy nodes.


@st.composite
def dead_nearest_region(draw: st.DrawFn) -> tuple[ClientPlace, list[NodeView], str]:
    """A located client, a fleet whose nearest region is all down, the expected region."""
    nodes = draw(fleets(min_size=2, saturation=False, stray=False))
    location = draw(coordinates | country_coordinates)
    client = ClientPlace(address=draw(addresses), latitude=location[0], longitude=location[1])
    nearest = regions_with_nodes_by_rank(RoutingPolicy(WORLD), client, nodes)[0]
    nodes = [replace(n, healthy=False) if n.region == nearest else n for n in nodes]
    healthy_regions = {n.region for n in nodes if n.healthy}
    assume(healthy_regions)
    expected = next(
        r for r in regions_with_nodes_by_rank(RoutingPolicy(WORLD), client, nodes) if r in healthy_regions
    )
    return client, nodes, expected


@PROPERTY
@given(case=dead_nearest_region())
def test_a_dead_nearest_region_fails_over_to_the_next_nearest_healthy_one(
    case: tuple[ClientPlace, list[NodeView], str],
) -> None:
    client, nodes, expected = case
    plan = RoutingPolicy(WORLD).plan(client, nodes)
    assert plan[0].node.region == expected
    rtts = [c.rtt_ms for c in plan]
    assert all(rtt is not None for rtt in rtts)
    assert rtts == sorted(rtts)  # type: ignore[type-var]


@PROPERTY
@given(case=dead_nearest_region())
def test_a_dead_nearest_region_gives_reason_failover(case: tuple[ClientPlace, list[NodeView], str]) -> None:
    client, nodes, _ = case
    plan = RoutingPolicy(WORLD).plan(client, nodes)
    assert plan[0].reason == "failover"


@PROPERTY
@given(nodes=fleets(saturation=False, down=False, stray=False), location=coordinates | country_coordinates)
def test_with_every_node_up_the_first_choice_is_the_nearest_region(
    nodes: list[NodeView], location: tuple[float, float]
) -> None:
    client = ClientPlace(address="127.9.9.9", latitude=location[0], longitude=location[1])
    policy = RoutingPolicy(WORLD)
    plan = policy.plan(client, nodes)
    nearest = regions_with_nodes_by_rank(policy, client, nodes)[0]
    assert plan[0].node.region == nearest
    # Every region of the default world is staffed: one nearer than ``nearest`` with no
    # node in the inventory is down, so even ``nearest``'s nodes are then a failover.
    reason = "nearest" if nearest == first_world_region(policy, client) else "failover"
    assert all(c.reason == reason for c in plan if c.node.region == nearest)
    assert all(c.reason == "failover" for c in plan if c.node.region != nearest)


@PROPERTY
@given(client=clients(), nodes=fleets())
def test_only_the_nearest_world_region_is_nearest(client: ClientPlace, nodes: list[NodeView]) -> None:
    policy = RoutingPolicy(WORLD)
    first = first_world_region(policy, client)
    plan = policy.plan(client, nodes)
    assert all(c.node.region == first for c in plan if c.reason == "nearest")
    usable_here = [n for n in nodes if n.region == first and n.healthy and not n.saturated]
    assert all(c.reason == "nearest" for c in plan if c.node in usable_here)


# Property 5: overload semantics.


@PROPERTY
@given(client=clients(), nodes=fleets())
def test_saturated_nodes_come_after_every_usable_node_as_overload(
    client: ClientPlace, nodes: list[NodeView]
) -> None:
    policy = RoutingPolicy(WORLD)
    plan = policy.plan(client, nodes)
    saturated = [c.node.saturated for c in plan]
    assert saturated == sorted(saturated)  # False (usable) before True (saturated)
    assert all(c.reason == "overload" for c in plan if c.node.saturated)
    # Saturated nodes are nearest first, and by rendezvous within a region.
    ranking = regions_with_nodes_by_rank(policy, client, [c.node for c in plan])
    busy = [c.node for c in plan if c.node.saturated]
    assert [n.region for n in busy] == sorted((n.region for n in busy), key=ranking.index)
    for region in {n.region for n in busy}:
        in_region = [n for n in busy if n.region == region]
        assert in_region == rendezvous_order(client.address, in_region)


@PROPERTY
@given(client=clients(), nodes=fleets(down=False, stray=False))
def test_a_saturated_nearest_region_spills_over_with_reason_overload(
    client: ClientPlace, nodes: list[NodeView]
) -> None:
    policy = RoutingPolicy(WORLD)
    nearest = regions_with_nodes_by_rank(policy, client, nodes)[0]
    nodes = [replace(n, utilization=1.0) if n.region == nearest else n for n in nodes]
    usable = [n for n in nodes if not n.saturated]
    plan = policy.plan(client, nodes)
    if usable:
        first_usable_region = next(
            r for r in regions_with_nodes_by_rank(policy, client, nodes) if any(n.region == r for n in usable)
        )
        assert plan[0].node.region == first_usable_region
        assert plan[0].reason == "overload"
        assert all(c.reason == "overload" for c in plan)
    else:
        assert all(c.reason == "overload" for c in plan)
        assert plan[0].node.region == nearest


@PROPERTY
@given(client=clients(), nodes=fleets(saturation=False))
def test_without_saturation_there_is_no_overload(client: ClientPlace, nodes: list[NodeView]) -> None:
    plan = RoutingPolicy(WORLD).plan(client, nodes)
    assert all(c.reason in {"nearest", "failover"} for c in plan)


# Property 6: rendezvous weights by capacity.


@settings(max_examples=15, deadline=None)
@given(salt=st.text(max_size=8), big=st.floats(min_value=1.0, max_value=1000.0))
def test_a_node_with_three_times_the_capacity_wins_about_three_times_as_often(salt: str, big: float) -> None:
    nodes = [node("heavy", "us-east-1", capacity_rps=3 * big), node("light", "us-east-1", capacity_rps=big)]
    wins = Counter(
        rendezvous_order(f"{salt}/10.0.{i // 256}.{i % 256}", nodes)[0].node_id for i in range(3000)
    )
    # Expected share 0.75 (sd about 0.008 over 3000 keys): [0.70, 0.80] is a ratio of 2.3 to 4.
    assert 0.70 <= wins["heavy"] / 3000 <= 0.80


def test_winning_shares_follow_capacity_through_the_plan() -> None:
    nodes = [
        node("a", "eu-central-1", capacity_rps=1.0),
        node("b", "eu-central-1", capacity_rps=2.0),
        node("c", "eu-central-1", capacity_rps=3.0),
    ]
    policy = RoutingPolicy(WORLD)
    total = 6000
    wins = Counter(
        policy.plan(place_of("DE", f"127.20.{i // 256}.{i % 256}"), nodes)[0].node.node_id
        for i in range(total)
    )
    for node_id, share in {"a": 1 / 6, "b": 2 / 6, "c": 3 / 6}.items():
        assert abs(wins[node_id] / total - share) < 0.04


def test_equal_capacities_share_evenly() -> None:
    nodes = [node(f"n{i}", "us-east-1") for i in range(4)]
    wins = Counter(rendezvous_order(f"client-{i}", nodes)[0].node_id for i in range(4000))
    assert all(800 <= wins[f"n{i}"] <= 1200 for i in range(4))


def test_rendezvous_scores_are_stable_and_weighted() -> None:
    light = node("n", "us-east-1", capacity_rps=1.0)
    heavy = node("n", "us-east-1", capacity_rps=3.0)
    assert rendezvous_score("k", light) == rendezvous_score("k", light)
    # Same id and key: the same uniform draw, scaled by capacity.
    assert rendezvous_score("k", heavy) == pytest.approx(3 * rendezvous_score("k", light))
    # Zero capacity does not divide by zero; the node just (almost) never wins.
    idle = node("idle", "us-east-1", capacity_rps=0.0)
    assert rendezvous_score("k", idle) > 0
    assert sum(rendezvous_order(f"k{i}", [idle, light])[0] is idle for i in range(500)) == 0


def test_rendezvous_order_of_zero_or_one_node() -> None:
    only = node("only", "us-east-1")
    assert rendezvous_order("k", []) == []
    assert rendezvous_order("k", [only]) == [only]


# Examples: home regions.


@pytest.mark.parametrize(
    ("country", "region"),
    [
        ("KR", "ap-northeast-2"),
        ("BR", "sa-east-1"),
        ("DE", "eu-central-1"),
        ("US", "us-east-1"),
        ("JP", "ap-northeast-1"),
        ("AU", "ap-southeast-2"),
        ("IN", "ap-south-1"),
    ],
)
def test_first_choice_is_the_home_region(country: str, region: str) -> None:
    plan = RoutingPolicy(WORLD).plan(place_of(country), one_per_region())
    assert plan[0].node.region == region
    assert plan[0].reason == "nearest"
    assert all(c.reason == "failover" for c in plan[1:])
    assert len(plan) == len(REGION_IDS)


def test_candidates_carry_the_modeled_rtt_nearest_first() -> None:
    client = place_of("KR")
    plan = RoutingPolicy(WORLD).plan(client, one_per_region())
    model = LatencyModel(WORLD)
    country = WORLD.country("KR")
    rtts = [c.rtt_ms for c in plan]
    assert rtts == sorted(rtts)  # type: ignore[type-var]
    # Regions are ranked from the client's place rounded to 0.01 degree.
    assert plan[0].rtt_ms == pytest.approx(model.rtt_ms(country, WORLD.region("ap-northeast-2")), abs=1.0)
    assert [c.node.region for c in plan[:2]] == ["ap-northeast-2", "ap-northeast-1"]


def test_region_ranking_is_shared_by_clients_of_one_place() -> None:
    policy = RoutingPolicy(WORLD)
    first = policy.region_ranking(ClientPlace(address="a", latitude=37.5701, longitude=126.9801))
    second = policy.region_ranking(ClientPlace(address="b", latitude=37.5699, longitude=126.9799))
    assert first is second
    assert [region for region, _ in first][:1] == ["ap-northeast-2"]
    assert sorted(region for region, _ in first) == sorted(REGION_IDS)


def test_seoul_down_sends_korea_to_tokyo() -> None:
    nodes = one_per_region()
    nodes[REGION_IDS.index("ap-northeast-2")] = node("ap-northeast-2-a", "ap-northeast-2", healthy=False)
    plan = RoutingPolicy(WORLD).plan(place_of("KR"), nodes)
    assert plan[0].node.region == "ap-northeast-1"
    assert "ap-northeast-2-a" not in ids(plan)


def test_seoul_down_sends_korea_to_tokyo_as_failover() -> None:
    nodes = one_per_region()
    nodes[REGION_IDS.index("ap-northeast-2")] = node("ap-northeast-2-a", "ap-northeast-2", healthy=False)
    plan = RoutingPolicy(WORLD).plan(place_of("KR"), nodes)
    assert (plan[0].node.region, plan[0].reason) == ("ap-northeast-1", "failover")


def test_one_node_of_two_down_stays_in_the_region() -> None:
    nodes = [
        node("seoul-a", "ap-northeast-2", healthy=False),
        node("seoul-b", "ap-northeast-2"),
        node("tokyo-a", "ap-northeast-1"),
    ]
    plan = RoutingPolicy(WORLD).plan(place_of("KR"), nodes)
    assert [(c.node.node_id, c.reason) for c in plan] == [("seoul-b", "nearest"), ("tokyo-a", "failover")]


def test_a_staffed_region_missing_from_the_inventory_is_down() -> None:
    # The world gives Seoul an edge node; with none in the inventory, Seoul is down.
    nodes = [node("tokyo-a", "ap-northeast-1"), node("frankfurt-a", "eu-central-1")]
    plan = RoutingPolicy(WORLD).plan(place_of("KR"), nodes)
    assert [(c.node.node_id, c.reason) for c in plan] == [
        ("tokyo-a", "failover"),
        ("frankfurt-a", "failover"),
    ]


@pytest.mark.parametrize("pin", ["seoul-a", "ap-northeast-2"])
def test_the_region_after_a_pinned_one_is_a_failover(pin: str) -> None:
    nodes = [node("seoul-a", "ap-northeast-2"), node("tokyo-a", "ap-northeast-1")]
    plan = RoutingPolicy(WORLD).plan(place_of("KR", pin=pin), nodes)
    assert [(c.node.node_id, c.reason) for c in plan] == [("seoul-a", "pinned"), ("tokyo-a", "failover")]


# Examples: overload.


def test_saturated_seoul_spills_to_tokyo_as_overload() -> None:
    nodes = [
        node("seoul-a", "ap-northeast-2", utilization=1.0),
        node("tokyo-a", "ap-northeast-1", utilization=0.2),
        node("mumbai-a", "ap-south-1"),
    ]
    plan = RoutingPolicy(WORLD).plan(place_of("KR"), nodes)
    assert [(c.node.node_id, c.reason) for c in plan] == [
        ("tokyo-a", "overload"),
        ("mumbai-a", "overload"),
        ("seoul-a", "overload"),
    ]


def test_one_saturated_node_of_a_region_yields_to_its_sibling() -> None:
    nodes = [
        node("seoul-a", "ap-northeast-2", utilization=1.2),
        node("seoul-b", "ap-northeast-2", utilization=0.99),
        node("tokyo-a", "ap-northeast-1"),
    ]
    plan = RoutingPolicy(WORLD).plan(place_of("KR"), nodes)
    assert [(c.node.node_id, c.reason) for c in plan] == [
        ("seoul-b", "nearest"),
        ("tokyo-a", "failover"),
        ("seoul-a", "overload"),
    ]


def test_every_node_saturated_serves_slowly_nearest_first() -> None:
    nodes = [node(f"{region}-a", region, utilization=1.5) for region in REGION_IDS]
    plan = RoutingPolicy(WORLD).plan(place_of("BR"), nodes)
    assert plan[0].node.region == "sa-east-1"
    assert all(c.reason == "overload" for c in plan)
    assert len(plan) == len(REGION_IDS)


def test_saturation_starts_at_full_utilization() -> None:
    assert not node("a", "us-east-1", utilization=0.9999).saturated
    assert node("a", "us-east-1", utilization=1.0).saturated
    assert node("a", "us-east-1", utilization=3.0).saturated


# Examples: pins.


def test_pin_by_region_goes_first_then_the_usual_order() -> None:
    nodes = one_per_region()
    policy = RoutingPolicy(WORLD)
    unpinned = policy.plan(place_of("KR"), nodes)
    plan = policy.plan(place_of("KR", pin="us-east-1"), nodes)
    assert (plan[0].node.node_id, plan[0].reason) == ("us-east-1-a", "pinned")
    assert plan[0].rtt_ms == next(c.rtt_ms for c in unpinned if c.node.region == "us-east-1")
    assert ids(plan[1:]) == [i for i in ids(unpinned) if i != "us-east-1-a"]
    assert plan[1].reason == "nearest"


def test_pin_by_node_id() -> None:
    nodes = [
        node("seoul-a", "ap-northeast-2"),
        node("seoul-b", "ap-northeast-2"),
        node("tokyo-a", "ap-northeast-1"),
    ]
    for pinned in ("seoul-a", "seoul-b", "tokyo-a"):
        plan = RoutingPolicy(WORLD).plan(place_of("KR", pin=pinned), nodes)
        assert (plan[0].node.node_id, plan[0].reason) == (pinned, "pinned")
        assert sorted(ids(plan)) == ["seoul-a", "seoul-b", "tokyo-a"]
        assert [c.reason for c in plan].count("pinned") == 1


def test_pin_by_region_takes_only_its_usable_nodes() -> None:
    nodes = [
        node("fra-a", "eu-central-1", utilization=1.0),
        node("fra-b", "eu-central-1"),
        node("fra-c", "eu-central-1", healthy=False),
        node("seoul-a", "ap-northeast-2"),
    ]
    plan = RoutingPolicy(WORLD).plan(place_of("KR", pin="eu-central-1"), nodes)
    assert [(c.node.node_id, c.reason) for c in plan] == [
        ("fra-b", "pinned"),
        ("seoul-a", "nearest"),
        ("fra-a", "overload"),
    ]


def test_pin_to_a_saturated_region_still_pins_it() -> None:
    nodes = [node("fra-a", "eu-central-1", utilization=1.0), node("seoul-a", "ap-northeast-2")]
    plan = RoutingPolicy(WORLD).plan(place_of("KR", pin="eu-central-1"), nodes)
    assert [(c.node.node_id, c.reason) for c in plan] == [("fra-a", "pinned"), ("seoul-a", "nearest")]


@pytest.mark.parametrize("pin", ["seoul-down", "no-such-node", "sa-east-1", ""])
def test_unusable_pins_are_ignored(pin: str) -> None:
    nodes = [node("seoul-down", "ap-northeast-2", healthy=False), node("tokyo-a", "ap-northeast-1")]
    plan = RoutingPolicy(WORLD).plan(place_of("KR", pin=pin), nodes)
    assert [(c.node.node_id, c.reason) for c in plan] == [("tokyo-a", "failover")]


# Examples: unknown location, stray regions, empty inventories.


def test_unknown_location_gets_world_order_without_rtt() -> None:
    client = ClientPlace(address="203.0.113.9")
    assert not client.located
    assert ClientPlace(address="x", latitude=1.0).located is False
    assert place_of("KR").located
    nodes = list(reversed(one_per_region()))
    plan = RoutingPolicy(WORLD).plan(client, nodes)
    assert [c.node.region for c in plan] == list(REGION_IDS)
    assert all(c.rtt_ms is None for c in plan)
    assert plan[0].reason == "nearest"
    assert all(c.reason == "failover" for c in plan[1:])
    assert RoutingPolicy(WORLD).region_ranking(client) == tuple((r, None) for r in REGION_IDS)


def test_nodes_of_regions_the_world_does_not_know_come_last() -> None:
    nodes = [node("typo-b", "zz-typo-2"), node("typo-a", "aa-typo-1"), node("sp-a", "sa-east-1")]
    plan = RoutingPolicy(WORLD).plan(place_of("BR"), nodes)
    assert [(c.node.node_id, c.rtt_ms is None) for c in plan] == [
        ("sp-a", False),
        ("typo-a", True),
        ("typo-b", True),
    ]


def test_empty_inventory_gives_an_empty_plan() -> None:
    policy = RoutingPolicy(WORLD)
    assert policy.plan(place_of("KR"), []) == []
    assert policy.plan(place_of("KR", pin="ap-northeast-2"), []) == []
    assert policy.plan(place_of("KR"), one_per_region(), limit=0) == []
    assert len(policy.plan(place_of("KR"), one_per_region(), limit=2)) == 2


def test_same_client_keeps_the_same_node() -> None:
    nodes = [node(f"ashburn-{i}", "us-east-1") for i in range(5)]
    policy = RoutingPolicy(WORLD)
    chosen = {policy.plan(place_of("US", "127.3.0.77"), nodes)[0].node.node_id for _ in range(20)}
    assert len(chosen) == 1
    spread = {policy.plan(place_of("US", f"127.3.0.{i}"), nodes)[0].node.node_id for i in range(200)}
    assert spread == {n.node_id for n in nodes}
