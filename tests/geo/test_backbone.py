"""The backbone file and its paths: loading, validation, and the invariants of the routes."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from geo.backbone import (
    DEFAULT_BACKBONE,
    Backbone,
    BackboneConstants,
    Hub,
    Link,
    great_circle_km,
    load_backbone,
)
from geo.backbone_paths import BackbonePaths
from geo.errors import InvalidValueError, WorldFileError

points = st.tuples(
    st.floats(min_value=-89.9, max_value=89.9, allow_nan=False),
    st.floats(min_value=-180, max_value=180, allow_nan=False),
)


@pytest.fixture(scope="module")
def paths() -> BackbonePaths:
    return BackbonePaths(load_backbone(DEFAULT_BACKBONE))


def _hub(hub_id: str, latitude: float, longitude: float, continent: str = "EU") -> Hub:
    return Hub(id=hub_id, city=hub_id.title(), continent=continent, latitude=latitude, longitude=longitude)


def test_the_default_backbone_is_one_connected_graph(paths: BackbonePaths) -> None:
    backbone = paths.backbone
    assert len(backbone.hubs) >= 60
    assert len(backbone.links) >= 100
    first = backbone.hubs[0].id
    for hub in backbone.hubs:
        assert paths.hub_path(first, hub.id), f"{hub.id} is cut off"
    # Published lengths are never shorter than the great circle: no cable beats geometry.
    for link in backbone.links:
        a, b = backbone.hub(link.a), backbone.hub(link.b)
        assert backbone.length_km(link) >= great_circle_km(a.latitude, a.longitude, b.latitude, b.longitude)


@settings(max_examples=200, deadline=None)
@given(points, points)
def test_routes_are_symmetric_and_never_beat_light(
    paths: BackbonePaths, a: tuple[float, float], b: tuple[float, float]
) -> None:
    there, back = paths.route(a, b), paths.route(b, a)
    assert there.rtt_ms == pytest.approx(back.rtt_ms, rel=1e-9)
    assert [hub.id for hub in there.hubs] == [hub.id for hub in reversed(back.hubs)]
    light_ms = 2 * great_circle_km(*a, *b) / paths.backbone.constants.fiber_km_per_ms
    assert there.rtt_ms >= light_ms - 1e-9
    assert there.rtt_ms == pytest.approx(there.base_ms + there.access_ms + there.backbone_ms + there.hops_ms)


@settings(max_examples=100, deadline=None)
@given(points, points, points)
def test_hub_costs_obey_the_triangle_inequality(
    paths: BackbonePaths, a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]
) -> None:
    # Between hubs, a shortest path is never beaten by going through a third hub (whose own
    # hop cost is then paid twice, hence the subtraction).
    hubs = [paths.nearest_hubs(*p)[0][1] for p in (a, b, c)]
    ids = [paths.backbone.hubs[i].id for i in hubs]
    middle_hop = paths.backbone.constants.hop_cost(paths.backbone.hubs[hubs[1]].continent)
    assert paths.hub_rtt_ms(ids[0], ids[2]) <= (
        paths.hub_rtt_ms(ids[0], ids[1]) + paths.hub_rtt_ms(ids[1], ids[2]) - middle_hop + 1e-9
    )


def test_paths_are_deterministic() -> None:
    backbone = load_backbone(DEFAULT_BACKBONE)
    first, second = BackbonePaths(backbone), BackbonePaths(backbone)
    for a in backbone.hubs[::7]:
        for b in backbone.hubs[::5]:
            assert first.hub_path(a.id, b.id) == second.hub_path(a.id, b.id)
            assert first.hub_rtt_ms(a.id, b.id) == second.hub_rtt_ms(a.id, b.id)


def test_europe_to_korea_detours_and_a_cable_cut_reroutes(paths: BackbonePaths) -> None:
    frankfurt, seoul = (50.11, 8.68), (37.57, 126.98)
    route = paths.route(frankfurt, seoul)
    # Nowhere near the great circle (8,550 km over Russia): around a continent.
    assert route.km > 1.8 * great_circle_km(*frankfurt, *seoul)
    # Cut every submarine cable the route uses.
    on_route = {frozenset((a.id, b.id)) for a, b in zip(route.hubs, route.hubs[1:], strict=False)}
    cables = {
        pair
        for pair in on_route
        for link in paths.backbone.links
        if frozenset((link.a, link.b)) == pair and link.kind == "submarine"
    }
    assert cables
    cut = BackbonePaths(paths.backbone.without_links(frozenset(cables)))
    rerouted = cut.route(frankfurt, seoul)
    assert rerouted.rtt_ms > route.rtt_ms
    assert rerouted.hubs
    assert rerouted.hubs != route.hubs


def test_a_place_cut_off_from_its_hub_backhauls_to_one_that_has_a_path() -> None:
    backbone = Backbone(
        hubs=(_hub("west", 0, 0), _hub("east", 0, 10)),
        links=(),
        constants=BackboneConstants(),
    )
    route = BackbonePaths(backbone).route((0, 0), (0, 10))
    assert [hub.id for hub in route.hubs] == ["west"]  # east has no link: its end backhauls
    assert route.rtt_ms > 2 * great_circle_km(0, 0, 0, 10) / backbone.constants.fiber_km_per_ms


def test_a_route_adds_up_its_parts() -> None:
    constants = BackboneConstants(
        base_ms=2.0,
        access_route_factor=2.0,
        terrestrial_route_factor=1.5,
        submarine_route_factor=1.2,
        entry_hubs=1,
        hop_ms=BackboneConstants().hop_ms,
    )
    backbone = Backbone(
        hubs=(_hub("west", 0, 0), _hub("middle", 0, 5), _hub("east", 0, 10)),
        links=(
            Link(a="west", b="middle", kind="terrestrial"),
            Link(a="middle", b="east", kind="submarine", km=1000.0),
        ),
        constants=constants,
    )
    route = BackbonePaths(backbone).route((0, 0.5), (0, 10))
    assert [hub.id for hub in route.hubs] == ["west", "middle", "east"]
    west_middle = great_circle_km(0, 0, 0, 5) * 1.5
    assert route.backbone_km == pytest.approx(west_middle + 1000.0)
    assert route.access_km == pytest.approx((great_circle_km(0, 0.5, 0, 0) * 2.0, 0.0))
    hop = constants.hop_cost("EU")
    expected = 2.0 + 2 * (route.access_km[0] + west_middle + 1000.0) / constants.fiber_km_per_ms + 3 * hop
    assert route.rtt_ms == pytest.approx(expected)


ONE_HUB = 'hubs = [{ id = "a", city = "A", continent = "EU", latitude = 0, longitude = 0 }]\n'
TWO_HUBS = (
    'hubs = [{ id = "a", city = "A", continent = "EU", latitude = 0, longitude = 0 },'
    ' { id = "b", city = "B", continent = "EU", latitude = 0, longitude = 1 }]\n'
)
ONE_LINK = 'links = [{ a = "a", b = "b", kind = "submarine" }]\n'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("hubs = []", "hubs: must be a non-empty array of tables"),
        (ONE_HUB.replace("EU", "XX") + ONE_LINK, "hubs[0].continent: must be one of"),
        (ONE_HUB + ONE_LINK, "links[0]: hub 'b' is not defined in hubs"),
        (
            TWO_HUBS + ONE_LINK.replace("submarine", "cable"),
            "links[0].kind: must be one of terrestrial, submarine",
        ),
        (TWO_HUBS + ONE_LINK.replace("}]", ", km = -5 }]"), "links[0].km: must be a positive length"),
        (
            TWO_HUBS + ONE_LINK.replace("}]", '}, { a = "b", b = "a", kind = "terrestrial" }]'),
            "links[1]: b - a is listed twice",
        ),
        (
            TWO_HUBS + ONE_LINK + "[model]\nsubmarine_route_factor = 0.9",
            "model.submarine_route_factor: must be at least 1",
        ),
        (TWO_HUBS + ONE_LINK + "[model.hop_ms]\nXX = 1", "model.hop_ms.XX: unknown key"),
    ],
)
def test_bad_backbone_files_name_the_key(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / f"backbone-{abs(hash(text))}.toml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(WorldFileError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_backbone(path)


def test_a_missing_backbone_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(WorldFileError, match="cannot read the backbone file"):
        load_backbone(tmp_path / "nowhere.toml")


def test_links_are_validated() -> None:
    with pytest.raises(InvalidValueError, match="two different hubs"):
        Link(a="x", b="x", kind="terrestrial")
    with pytest.raises(InvalidValueError, match="positive length"):
        Link(a="x", b="y", kind="terrestrial", km=math.inf)
