"""WAN faults as pure decisions: one trip through a fault (TCP-like loss), the fault table,
what an operator's JSON may ask for, and who may ask. The clock and the random generator
are arguments, so every timing here is exact."""

from __future__ import annotations

import dataclasses
import json
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from geo.latency import LatencyModel
from geo.lookup import UNKNOWN, Location
from geo.world import load_world
from router.errors import FaultSpecError
from router.fault_admin import DISABLED, refuse
from router.faults import (
    MAX_RETRANSMISSIONS,
    MIN_RTO_MS,
    FaultTable,
    WanFault,
    fault_from_json,
    one_way_trip,
)
from router.wan import WanPath, WanSettings

REGIONS = ("ap-northeast-2", "eu-central-1", "sa-east-1")
WORLD_FILE = Path(__file__).resolve().parents[2] / "deploy" / "local" / "world.toml"


class Unlucky(random.Random):
    """Every transmission is lost (``random()`` is below any loss ratio)."""

    def random(self) -> float:
        return 0.0


def fault(region: str = "eu-central-1", **fields: Any) -> WanFault:
    values: dict[str, Any] = {"fault_id": "fault-1", "region": region, "created_at": 100.0} | fields
    return WanFault(**values)


faults = st.builds(
    WanFault,
    fault_id=st.just("fault-1"),
    region=st.sampled_from(REGIONS),
    extra_latency_ms=st.floats(0, 60_000),
    loss=st.floats(0, 1, exclude_max=True),
    rto_min_ms=st.floats(1, MIN_RTO_MS),
    created_at=st.just(0.0),
)
base_delays = st.floats(0, 500)
seeds = st.integers(0, 2**32)


# One trip.


@given(faults, base_delays, seeds)
def test_a_trip_adds_at_least_the_fault_latency_and_retransmissions_cost_their_timeouts(
    wan_fault: WanFault, base_ms: float, seed: int
) -> None:
    trip = one_way_trip(wan_fault, base_ms, random.Random(seed))
    assert trip.extra_ms >= wan_fault.extra_latency_ms >= 0
    assert math.isfinite(trip.extra_ms)
    assert 0 <= trip.retransmissions <= MAX_RETRANSMISSIONS
    assert not trip.lost or trip.retransmissions == MAX_RETRANSMISSIONS
    # Each timeout is at least the minimum RTO, doubled per consecutive loss.
    waited = trip.extra_ms - wan_fault.extra_latency_ms
    timeouts = trip.retransmissions + int(trip.lost)
    assert waited >= wan_fault.rto_min_ms * (2**timeouts - 1) - 1e-6


@given(faults, base_delays, seeds)
def test_no_loss_means_no_retransmission_and_no_failure(
    wan_fault: WanFault, base_ms: float, seed: int
) -> None:
    lossless = dataclasses.replace(wan_fault, loss=0.0)
    trip = one_way_trip(lossless, base_ms, random.Random(seed))
    assert (trip.extra_ms, trip.retransmissions, trip.lost) == (lossless.extra_latency_ms, 0, False)


def test_a_trip_lost_for_good_waits_out_seven_doubling_timeouts() -> None:
    # RTO = round trip (2 x (30 + 20) ms) + 200 ms = 300 ms, then 600, 1200, ... (7 timeouts).
    trip = one_way_trip(fault(extra_latency_ms=20.0, loss=0.5), 30.0, Unlucky())
    assert trip.lost
    assert trip.retransmissions == MAX_RETRANSMISSIONS
    assert trip.extra_ms == pytest.approx(20.0 + 300.0 * (2**7 - 1))


def test_five_percent_loss_is_tail_latency_not_failures() -> None:
    rng = random.Random(7)
    trips = [one_way_trip(fault(loss=0.05), 10.0, rng) for _ in range(20_000)]
    assert not any(trip.lost for trip in trips)
    delayed = sum(1 for trip in trips if trip.retransmissions) / len(trips)
    assert delayed == pytest.approx(0.05, abs=0.01)
    assert all(trip.retransmissions == 0 or trip.extra_ms >= MIN_RTO_MS for trip in trips)


def test_near_total_loss_fails_nearly_every_trip() -> None:
    rng = random.Random(7)
    lost = sum(one_way_trip(fault(loss=0.999), 0.0, rng).lost for _ in range(2_000))
    assert lost / 2_000 > 0.98  # 0.999 ** 7


# The fault itself.


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"extra_latency_ms": -1.0}, "latency_ms must be within [0, 60000]"),
        ({"extra_latency_ms": math.inf}, "latency_ms must be within"),
        ({"loss": 1.0}, "loss must be a ratio within [0, 1)"),
        ({"loss": math.nan}, "loss must be a ratio within [0, 1)"),
        ({"rto_min_ms": 0.5}, "rto_min_ms must be within [1, 200]"),
        ({"expires_at": 100.0}, "for_s must be a positive number of seconds"),
    ],
)
def test_a_fault_out_of_range_says_which_field(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(FaultSpecError) as raised:
        fault(**fields)
    assert message in raised.value.message
    assert raised.value.status == 400


def test_expired_faults_have_no_effect() -> None:
    table = FaultTable()
    table.put(fault(extra_latency_ms=100.0, expires_at=101.0))
    world = load_world(WORLD_FILE)
    settings_ = WanSettings(enabled=False, latency=LatencyModel(world), rng=random.Random(1))
    now = [100.5]
    path = WanPath(settings_, table, clock=lambda: now[0])
    assert path.leg(UNKNOWN, "eu-central-1").delay_ms == 100.0  # faults apply with the model off
    assert path.leg(UNKNOWN, "sa-east-1").delay_ms == 0.0
    now[0] = 101.0
    leg = path.leg(UNKNOWN, "eu-central-1")
    assert (leg.delay_ms, leg.fault) == (0.0, None)
    assert table.empty


def test_the_fault_overlay_adds_to_the_modeled_delay() -> None:
    world = load_world(WORLD_FILE)
    berlin = Location(country="DE", latitude=52.52, longitude=13.40)
    modeled = WanSettings(enabled=True, latency=LatencyModel(world), rng=random.Random(1))
    base = WanPath(modeled, FaultTable()).leg(berlin, "eu-central-1").delay_ms
    table = FaultTable()
    table.put(fault(extra_latency_ms=250.0))
    again = WanSettings(enabled=True, latency=LatencyModel(world), rng=random.Random(1))
    leg = WanPath(again, table, clock=lambda: 100.0).leg(berlin, "eu-central-1")
    assert leg.delay_ms == pytest.approx(base + 250.0)
    assert leg.fault is not None
    assert not leg.lost


# The table.


class FaultTableMachine(RuleBasedStateMachine):
    """The table against a plain model: one fault per region, the newest; expiry by clock."""

    def __init__(self) -> None:
        super().__init__()
        self.table = FaultTable()
        self.model: dict[str, WanFault] = {}
        self.now = 0.0
        self.issued = 0

    @rule(region=st.sampled_from(REGIONS), for_s=st.none() | st.floats(0.01, 5))
    def put(self, region: str, for_s: float | None) -> None:
        self.issued += 1
        new = WanFault(
            fault_id=f"f{self.issued}",
            region=region,
            extra_latency_ms=10.0,
            created_at=self.now,
            expires_at=None if for_s is None else self.now + for_s,
        )
        replaced = self.table.put(new)
        previous = self.model.get(region)
        assert replaced is previous
        self.model[region] = new

    @rule(seconds=st.floats(0, 3))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @rule(region=st.sampled_from(REGIONS))
    def get(self, region: str) -> None:
        expected = self.model.get(region)
        if expected is not None and expected.expired(self.now):
            expected = None
        assert self.table.get(region, self.now) is expected

    @rule(region=st.none() | st.sampled_from(REGIONS))
    def clear(self, region: str | None) -> None:
        healed = self.table.clear(region)
        expected = sorted(self.model) if region is None else [r for r in (region,) if r in self.model]
        assert [fault.region for fault in healed] == expected
        for name in expected:
            del self.model[name]

    @precondition(lambda self: self.model)
    @rule()
    def prune(self) -> None:
        expired = {fault.region for fault in self.table.prune(self.now)}
        assert expired == {region for region, fault in self.model.items() if fault.expired(self.now)}
        for region in expired:
            del self.model[region]

    @invariant()
    def active_faults_are_the_unexpired_newest(self) -> None:
        expected = [self.model[r] for r in sorted(self.model) if not self.model[r].expired(self.now)]
        assert self.table.active(self.now) == expected
        self.model = {fault.region: fault for fault in expected}  # active() pruned the rest
        assert self.table.empty == (not expected)


TestFaultTable = FaultTableMachine.TestCase
TestFaultTable.settings = settings(max_examples=60, stateful_step_count=30, deadline=None)


# What an operator may ask for.


def parse(body: bytes | str, region: str = "eu-central-1") -> WanFault:
    raw = body.encode() if isinstance(body, str) else body
    return fault_from_json(raw, region=region, known_regions=REGIONS, fault_id="fault-9", now=50.0)


def test_a_full_body_becomes_a_fault() -> None:
    parsed = parse('{"latency_ms": 200, "loss": 0.05, "for_s": 60}')
    assert (parsed.region, parsed.extra_latency_ms, parsed.loss) == ("eu-central-1", 200.0, 0.05)
    assert (parsed.created_at, parsed.expires_at, parsed.rto_min_ms) == (50.0, 110.0, MIN_RTO_MS)
    assert parse('{"loss": 0.1, "for_s": null}').expires_at is None  # until cleared


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("", "the body must be a JSON object like"),
        ("{loss: 1}", "the body is not JSON (Expecting property name"),
        (b"\xff", "the body is not JSON"),
        ("[0.05]", "the body must be a JSON object like"),
        ('{"lag": 5}', "unknown field 'lag': a fault has latency_ms, loss, for_s, rto_min_ms"),
        ('{"latency_ms": "200"}', 'latency_ms must be a number, got "200"'),
        ('{"loss": true}', "loss must be a number, got true"),
        ('{"loss": 1.5}', "loss must be a ratio within [0, 1) (0.05 is 5% of packets), got 1.5"),
        ('{"latency_ms": -3}', "latency_ms must be within [0, 60000] (extra one-way milliseconds), got -3.0"),
        ('{"loss": 0.1, "for_s": 0}', "for_s must be a positive number of seconds, got 0.0"),
        ('{"loss": 0.1, "for_s": Infinity}', "for_s must be a positive number of seconds, got inf"),
        ("{}", "this fault would change nothing: give latency_ms > 0 or loss > 0"),
    ],
)
def test_a_bad_body_says_exactly_what_is_wrong(body: str | bytes, message: str) -> None:
    with pytest.raises(FaultSpecError) as raised:
        parse(body)
    assert message in raised.value.message


def test_an_unknown_region_is_refused_naming_the_known_ones() -> None:
    with pytest.raises(FaultSpecError) as raised:
        parse('{"loss": 0.1}', region="mars-1")
    assert raised.value.message == (
        "unknown region 'mars-1': the world's regions are ap-northeast-2, eu-central-1, sa-east-1"
    )


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=8,
)
json_bodies = st.dictionaries(
    st.sampled_from(["latency_ms", "loss", "for_s", "rto_min_ms", "other"]), json_values, max_size=4
)


@given(st.one_of(json_bodies.map(json.dumps), st.binary(max_size=40).map(repr)))
@settings(max_examples=300)
def test_any_body_is_a_fault_or_a_clear_refusal(body: str) -> None:
    refusal: FaultSpecError | None = None
    try:
        parsed = parse(body)
    except FaultSpecError as exc:
        refusal = exc
    if refusal is None:
        assert parsed.extra_latency_ms > 0 or parsed.loss > 0
    else:
        assert refusal.message
        assert refusal.details["field"]


# Who may ask.


def test_only_the_admin_token_may_change_faults() -> None:
    disabled = refuse("Bearer anything", "")
    assert disabled is not None
    assert (disabled.status, json.loads(disabled.body)["message"]) == (403, DISABLED)
    for header in (None, "Basic dXNlcjpwYXNz", "Bearer wrong", "Bearer", "Bearer s3cret-t0ken-x"):
        refused = refuse(header, "s3cret-t0ken")
        assert refused is not None, header
        assert refused.status == 401
        assert refused.headers == [(b"www-authenticate", b'Bearer realm="edge-router"')]
    assert refuse("Bearer s3cret-t0ken", "s3cret-t0ken") is None
    assert refuse("bearer  s3cret-t0ken ", "s3cret-t0ken") is None
