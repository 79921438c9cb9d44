"""The latency model: haversine properties, the great-circle RTT formula, places, and its fit.

The backbone model has its own tests (``test_latency_backbone.py``, ``test_backbone*.py``).
"""

from __future__ import annotations

import math
import random
import statistics
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.errors import InvalidValueError, UnknownPlaceError
from geo.latency import (
    MAX_DISTANCE_KM,
    Coordinate,
    LatencyModel,
    LatencyParams,
    Place,
    haversine_km,
)
from geo.params import LATENCY_MODELS, LatencyModelName
from geo.places import place_label, resolve_place
from geo.world import World
from tests.geo.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "world.md"

latitudes = st.floats(min_value=-90, max_value=90, allow_nan=False)
longitudes = st.floats(min_value=-180, max_value=180, allow_nan=False)
points = st.tuples(latitudes, longitudes)


@given(points, points)
def test_haversine_is_symmetric(a: tuple[float, float], b: tuple[float, float]) -> None:
    assert math.isclose(haversine_km(*a, *b), haversine_km(*b, *a), rel_tol=1e-12, abs_tol=1e-9)


@given(points, points)
def test_haversine_is_bounded_by_half_the_circumference(
    a: tuple[float, float], b: tuple[float, float]
) -> None:
    distance = haversine_km(*a, *b)
    assert 0 <= distance <= MAX_DISTANCE_KM + 1e-9
    assert pytest.approx(20_015.1, abs=0.1) == MAX_DISTANCE_KM


@given(points)
def test_haversine_of_a_point_to_itself_is_zero(a: tuple[float, float]) -> None:
    assert haversine_km(*a, *a) == pytest.approx(0, abs=1e-6)


@given(points, points, points)
def test_haversine_obeys_the_triangle_inequality(
    a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]
) -> None:
    # Near antipodes asin(sqrt(a)) is ill-conditioned: a rounding error of 1e-16 in ``a``
    # moves the distance by ~1e-4 km (Hypothesis found a 3e-6 km excess). A metre of
    # tolerance absorbs that and still catches any real error in the formula.
    assert haversine_km(*a, *c) <= haversine_km(*a, *b) + haversine_km(*b, *c) + 1e-3


def test_haversine_known_distances() -> None:
    assert haversine_km(0, 0, 0, 180) == pytest.approx(MAX_DISTANCE_KM)
    assert haversine_km(90, 0, -90, 0) == pytest.approx(MAX_DISTANCE_KM)
    assert haversine_km(0, 0, 0, 1) == pytest.approx(111.195, abs=0.01)  # one degree of equator
    # London to New York is about 5,570 km.
    assert haversine_km(51.5074, -0.1278, 40.7128, -74.0060) == pytest.approx(5570, abs=10)


def _great_circle(world: World) -> LatencyModel:
    return LatencyModel(world, replace(world.latency, model="great-circle"))


def test_rtt_formula(small_world: World) -> None:
    model = _great_circle(small_world)
    assert model.route("KR", "DE") is None  # no backbone behind this model
    p = small_world.latency
    distance = model.distance_km("KR", "ap-northeast-2")
    expected = p.per_hop_base_ms + 2 * distance / p.fiber_km_per_ms * p.path_inflation
    assert model.rtt_ms("KR", "ap-northeast-2") == pytest.approx(expected)
    # The same place: only the base.
    assert model.rtt_ms("ap-northeast-2", "ap-northeast-2") == pytest.approx(p.per_hop_base_ms)


@pytest.mark.parametrize("model_name", LATENCY_MODELS)
def test_rtt_between_any_two_kinds_of_place(small_world: World, model_name: LatencyModelName) -> None:
    model = LatencyModel(small_world, replace(small_world.latency, model=model_name))
    korea, seoul = small_world.country("KR"), small_world.region("ap-northeast-2")
    point = Coordinate(latitude=52.52, longitude=13.405)
    pairs: list[tuple[Place | str, Place | str]] = [
        (korea, seoul),
        (seoul, point),
        (point, korea),
        ("KR", "37.57,126.98"),
    ]
    for a, b in pairs:
        assert model.rtt_ms(a, b) == pytest.approx(model.rtt_ms(b, a))
        assert model.rtt_ms(a, b) >= 1.0
    assert model.rtt_ms(korea, "Seoul") == model.rtt_ms(korea, seoul)


def test_model_orders_regions_by_rtt(default_world: World) -> None:
    model = LatencyModel(default_world)
    for code, nearest in [("KR", "ap-northeast-2"), ("JP", "ap-northeast-1"), ("DE", "eu-central-1")]:
        ranked = model.regions_by_rtt(code)
        assert ranked[0][0].id == nearest
        assert [rtt for _, rtt in ranked] == sorted(rtt for _, rtt in ranked)
        assert len(ranked) == len(default_world.regions)


def test_default_world_home_regions_are_the_lowest_rtt_ones(default_world: World) -> None:
    # The world file chose home regions by great-circle distance (its comments say so). Over
    # the backbone a home region is the best or the runner-up: Taiwan, Hong Kong, Vietnam and
    # the Philippines reach Tokyo a little sooner than their home, Seoul, and Peru Ashburn.
    great_circle = _great_circle(default_world)
    backbone = LatencyModel(default_world)
    for country in default_world.countries:
        home = default_world.home_region(country.code)
        assert home == great_circle.regions_by_rtt(country)[0][0], country.code
        assert home in [region for region, _ in backbone.regions_by_rtt(country)[:2]], country.code


def test_one_way_delay_is_seeded_and_centred_on_half_the_rtt(small_world: World) -> None:
    model = LatencyModel(small_world)
    first = [model.one_way_delay_ms("KR", "eu-central-1", random.Random(42)) for _ in range(3)]
    assert first == [model.one_way_delay_ms("KR", "eu-central-1", random.Random(42)) for _ in range(3)]
    rng = random.Random(small_world.seed)
    samples = [model.one_way_delay_ms("KR", "eu-central-1", rng) for _ in range(20_000)]
    half = model.rtt_ms("KR", "eu-central-1") / 2
    jitter = small_world.latency.jitter_ms
    assert all(half - jitter <= s <= half + jitter for s in samples)
    assert statistics.fmean(samples) == pytest.approx(half, abs=0.05)
    assert statistics.pstdev(samples) == pytest.approx(jitter / math.sqrt(3), rel=0.05)  # uniform


def test_jitter_never_beats_light_in_fiber(small_world: World) -> None:
    params = LatencyParams(
        model="great-circle", fiber_km_per_ms=200, path_inflation=1.0, per_hop_base_ms=0, jitter_ms=50
    )
    model = LatencyModel(small_world, params)
    light = model.distance_km("KR", "eu-central-1") / 200
    rng = random.Random(1)
    delays = [model.one_way_delay_ms("KR", "eu-central-1", rng) for _ in range(2_000)]
    assert min(delays) == pytest.approx(light)
    assert all(d >= light for d in delays)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("ap-northeast-2", "ap-northeast-2 (Seoul)"),
        ("kr", "KR (South Korea)"),
        ("Frankfurt", "eu-central-1 (Frankfurt)"),
        ("seoul", "ap-northeast-2 (Seoul)"),  # a PoP city wins over a country's city
        ("germany", "DE (Germany)"),
        ("Berlin", "DE (Germany)"),
        ("sao paulo", "BR (Brazil)"),
        ("SÃO  PAULO", "BR (Brazil)"),
        ("37.5,127", "37.5,127"),
        (" -33.87 , 151.21 ", "-33.87,151.21"),
    ],
)
def test_places_resolve_by_name(small_world: World, name: str, label: str) -> None:
    assert place_label(resolve_place(small_world, name)) == label


@pytest.mark.parametrize("name", ["Atlantis", "", "  ", "91,0", "0,181", "XX", "1,2,3"])
def test_unknown_places_are_errors(small_world: World, name: str) -> None:
    with pytest.raises(UnknownPlaceError, match="unknown place"):
        resolve_place(small_world, name)


def test_coordinates_are_validated() -> None:
    with pytest.raises(InvalidValueError, match="latitude"):
        Coordinate(latitude=-90.5, longitude=0)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("fiber_km_per_ms", 0.0),
        ("fiber_km_per_ms", 300.0),
        ("path_inflation", 0.99),
        ("jitter_ms", -1.0),
        ("model", "fastest"),
    ],
)
def test_latency_params_are_validated(field: str, value: object) -> None:
    values: dict[str, Any] = {field: value}
    with pytest.raises(InvalidValueError, match=field):
        LatencyParams(**values)


# --- the documented comparison with measurements (docs/world.md) -----------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class DocumentedPair:
    a: str
    b: str
    distance_km: float
    measured_ms: float
    modeled_ms: float
    used: bool


def _table(doc: str, name: str) -> list[list[str]]:
    """Rows of the markdown table between ``<!-- name:start -->`` and ``<!-- name:end -->``."""
    body = doc.split(f"<!-- {name}:start -->")[1].split(f"<!-- {name}:end -->", maxsplit=1)[0]
    lines = [line.strip() for line in body.strip().splitlines()]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in lines[2:]]


def _documented(doc_path: Path) -> tuple[dict[str, tuple[str, float, float]], list[DocumentedPair]]:
    doc = doc_path.read_text(encoding="utf-8")
    cities = {row[0]: (row[1], float(row[2]), float(row[3])) for row in _table(doc, "rtt-cities")}
    pairs = [
        DocumentedPair(
            a=row[0],
            b=row[1],
            distance_km=float(row[2]),
            measured_ms=float(row[3]),
            modeled_ms=float(row[4]),
            used=row[6] == "yes",
        )
        for row in _table(doc, "rtt-pairs")
    ]
    return cities, pairs


def _modeled(
    params: LatencyParams, cities: dict[str, tuple[str, float, float]], pair: DocumentedPair
) -> float:
    _, lat1, lon1 = cities[pair.a]
    _, lat2, lon2 = cities[pair.b]
    distance = haversine_km(lat1, lon1, lat2, lon2)
    return params.per_hop_base_ms + 2 * distance / params.fiber_km_per_ms * params.path_inflation


def _fit_score(
    params: LatencyParams, cities: dict[str, tuple[str, float, float]], pairs: list[DocumentedPair]
) -> float:
    return sum(((_modeled(params, cities, p) - p.measured_ms) / p.measured_ms) ** 2 for p in pairs if p.used)


def test_documented_table_is_what_the_model_computes(default_world: World) -> None:
    cities, pairs = _documented(DOC)
    for pair in pairs:
        _, lat1, lon1 = cities[pair.a]
        _, lat2, lon2 = cities[pair.b]
        assert haversine_km(lat1, lon1, lat2, lon2) == pytest.approx(pair.distance_km, abs=0.5)
        assert _modeled(default_world.latency, cities, pair) == pytest.approx(pair.modeled_ms, abs=0.05)


def test_model_matches_the_documented_measurements(default_world: World) -> None:
    cities, pairs = _documented(DOC)
    used = [pair for pair in pairs if pair.used]
    assert len(used) >= 10
    assert sum(cities[p.a][0] != cities[p.b][0] for p in used) >= 10  # across continents
    errors = [abs(_modeled(default_world.latency, cities, p) - p.measured_ms) / p.measured_ms for p in used]
    assert max(errors) <= 0.40
    assert statistics.median(errors) <= 0.10


def test_default_parameters_are_the_documented_fit(default_world: World) -> None:
    cities, pairs = _documented(DOC)
    fitted = replace(default_world.latency, backbone=None)
    assert fitted == LatencyParams()  # the world file and the code agree
    best = _fit_score(fitted, cities, pairs)
    for inflation, base in [(0.02, 0), (-0.02, 0), (0, 0.2), (0, -0.2), (0.02, -0.5), (-0.02, 0.5)]:
        nearby = LatencyParams(
            fiber_km_per_ms=fitted.fiber_km_per_ms,
            path_inflation=fitted.path_inflation + inflation,
            per_hop_base_ms=fitted.per_hop_base_ms + base,
            jitter_ms=fitted.jitter_ms,
        )
        assert _fit_score(nearby, cities, pairs) >= best
