"""Health of edge nodes: settings, active checks, passive ejection, and the fleet's cached views.

The clock is an argument (``now``) of every passive decision, and :class:`Fleet` takes an
injectable clock, so every timing here is exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from geo.world import load_world
from router.fleet import LOAD_REFRESH_S, Fleet
from router.health import HealthBook, HealthSettings
from router.inventory import EdgeEntry, Inventory
from router.policy import ClientPlace, RoutingPolicy
from runtime.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]

NODE = "us-east-1-a"


def book(**overrides: float) -> HealthBook:
    return HealthBook(HealthSettings(**overrides))  # type: ignore[arg-type]


# Settings.


def test_default_settings_are_valid() -> None:
    defaults = HealthSettings()
    assert defaults.unhealthy_after == 2
    assert defaults.healthy_after == 1
    assert defaults.eject_after_5xx == 5
    assert defaults.base_ejection_s <= defaults.max_ejection_s


@pytest.mark.parametrize(
    ("field", "value", "flag"),
    [
        ("interval_s", 0.0, "--health-interval"),
        ("timeout_s", -1.0, "--health-timeout"),
        ("base_ejection_s", 0.0, "--ejection"),
        ("max_ejection_s", math.nan, "--max-ejection"),
        ("interval_s", math.nan, "--health-interval"),
        ("unhealthy_after", 0, "--unhealthy-after"),
        ("healthy_after", 0, "--healthy-after"),
        ("eject_after_5xx", -3, "--eject-after-5xx"),
    ],
)
def test_bad_settings_name_their_flag(field: str, value: float, flag: str) -> None:
    with pytest.raises(ConfigError) as caught:
        HealthSettings(**{field: value})  # type: ignore[arg-type]
    assert caught.value.field == flag
    assert flag in str(caught.value)


def test_max_ejection_below_base_is_refused() -> None:
    with pytest.raises(ConfigError, match="--max-ejection: must be at least --ejection"):
        HealthSettings(base_ejection_s=10.0, max_ejection_s=5.0)
    assert HealthSettings(base_ejection_s=5.0, max_ejection_s=5.0).max_ejection_s == 5.0


# A node nobody has heard of, and new records.


def test_unknown_and_new_nodes_are_routable() -> None:
    health = book()
    assert health.routable("never-seen", 0.0)
    record = health.record(NODE)
    assert record.up
    assert record.routable(0.0)
    assert health.record(NODE) is record


def test_forget_others_drops_records_of_departed_nodes() -> None:
    health = book()
    health.connect_failed("gone", 0.0, "refused")
    health.connect_failed("kept", 0.0, "refused")
    health.forget_others({"kept"})
    assert health.routable("gone", 0.0)  # a fresh start should it come back
    assert not health.routable("kept", 0.0)


# Active checks.


def test_unhealthy_after_consecutive_failures() -> None:
    health = book(unhealthy_after=3)
    health.check_failed(NODE, "timeout")
    health.check_failed(NODE, "timeout")
    assert health.routable(NODE, 0.0)
    health.check_passed(NODE)  # a success in between starts the count again
    health.check_failed(NODE, "timeout")
    health.check_failed(NODE, "timeout")
    assert health.routable(NODE, 0.0)
    health.check_failed(NODE, "/healthz answered 503")
    record = health.record(NODE)
    assert not record.up
    assert not health.routable(NODE, 1e9)  # down is down, whatever the time
    assert record.last_check_error == "/healthz answered 503"


def test_healthy_after_consecutive_successes() -> None:
    health = book(unhealthy_after=1, healthy_after=3)
    health.check_failed(NODE, "refused")
    assert not health.record(NODE).up
    health.check_passed(NODE)
    health.check_passed(NODE)
    health.check_failed(NODE, "refused")  # starts the count again
    health.check_passed(NODE)
    health.check_passed(NODE)
    assert not health.routable(NODE, 0.0)
    health.check_passed(NODE)
    assert health.routable(NODE, 0.0)
    assert health.record(NODE).last_check_error == ""


def test_coming_back_through_active_checks_lifts_the_ejection() -> None:
    health = book(unhealthy_after=2, healthy_after=1, base_ejection_s=10.0, max_ejection_s=60.0)
    health.connect_failed(NODE, 100.0, "refused")
    health.connect_failed(NODE, 111.0, "refused")  # second in a row: 20 s, until 131
    assert health.record(NODE).ejections_in_a_row == 2
    health.check_failed(NODE, "refused")
    health.check_failed(NODE, "refused")
    assert not health.record(NODE).up
    health.check_passed(NODE)
    record = health.record(NODE)
    assert record.up
    assert health.routable(NODE, 112.0)  # not the rest of the old ejection
    assert record.ejections_in_a_row == 0
    assert record.ejections_total == 2  # history is kept
    health.connect_failed(NODE, 113.0, "refused")
    assert record.ejected_until == 123.0  # a fresh start: the base ejection again


def test_passing_checks_do_not_lift_a_passive_ejection_of_an_up_node() -> None:
    health = book(base_ejection_s=5.0)
    health.connect_failed(NODE, 0.0, "refused")
    health.check_passed(NODE)
    assert not health.routable(NODE, 1.0)
    assert health.routable(NODE, 5.0)


# Passive detection: connect failures.


def test_a_connect_failure_ejects_at_once_for_the_base_duration() -> None:
    health = book(base_ejection_s=2.0)
    health.connect_failed(NODE, 50.0, "Connection refused")
    record = health.record(NODE)
    assert not health.routable(NODE, 50.0)
    assert not health.routable(NODE, 51.999)
    assert health.routable(NODE, 52.0)
    assert record.up  # ejection is not the active verdict
    assert record.ejections_total == 1
    assert record.last_ejection_reason == "connect: Connection refused"


def test_ejections_in_a_row_grow_linearly_up_to_the_cap() -> None:
    health = book(base_ejection_s=2.0, max_ejection_s=7.0)
    now = 0.0
    durations = []
    for _ in range(6):
        health.connect_failed(NODE, now, "refused")
        until = health.record(NODE).ejected_until
        durations.append(until - now)
        now = until  # fails again as soon as it is back
    assert durations == [2.0, 4.0, 6.0, 7.0, 7.0, 7.0]
    assert health.record(NODE).ejections_in_a_row == 6


def test_a_success_after_the_ejection_resets_the_row() -> None:
    health = book(base_ejection_s=2.0)
    health.connect_failed(NODE, 0.0, "refused")
    health.answered(NODE, 200, 1.0)  # an in-flight answer during the ejection: no reset
    health.connect_failed(NODE, 2.0, "refused")
    assert health.record(NODE).ejected_until == 6.0
    health.answered(NODE, 204, 6.5)  # back and serving: the row is broken
    assert health.record(NODE).ejections_in_a_row == 0
    health.connect_failed(NODE, 7.0, "refused")
    assert health.record(NODE).ejected_until == 9.0


def test_concurrent_failures_of_one_outage_count_once() -> None:
    health = book(base_ejection_s=2.0, eject_after_5xx=1)
    health.connect_failed(NODE, 10.0, "refused")
    for offset in (0.0, 0.01, 0.5, 1.99):
        health.connect_failed(NODE, 10.0 + offset, "reset")
        health.answered(NODE, 502, 10.0 + offset)
    record = health.record(NODE)
    assert record.ejections_total == 1
    assert record.ejections_in_a_row == 1
    assert record.ejected_until == 12.0
    assert record.last_ejection_reason == "connect: refused"


# Passive detection: 5xx bursts.


def test_a_burst_of_5xx_ejects() -> None:
    health = book(eject_after_5xx=5, base_ejection_s=3.0)
    for status in (500, 502, 503, 504):
        health.answered(NODE, status, 1.0)
    assert health.routable(NODE, 1.0)
    health.answered(NODE, 599, 1.5)
    record = health.record(NODE)
    assert not health.routable(NODE, 1.5)
    assert record.ejected_until == 4.5
    assert record.last_ejection_reason == "5 consecutive 5xx responses"
    assert record.consecutive_5xx == 0


def test_an_answer_below_500_breaks_the_5xx_run() -> None:
    health = book(eject_after_5xx=3)
    for status in (500, 500, 404, 500, 500, 499, 500, 500, 200, 500):
        health.answered(NODE, status, 0.0)
    assert health.routable(NODE, 0.0)
    assert health.record(NODE).ejections_total == 0


def test_successes_of_an_unknown_node_leave_no_record_to_reset() -> None:
    health = book()
    health.answered("quiet", 200, 0.0)
    health.answered("quiet", 500, 0.0)
    assert health.record("quiet").consecutive_5xx == 1


# Invariants under any sequence of events (a state machine, as the house style asks).


class HealthMachine(RuleBasedStateMachine):
    """Random checks, connect failures and answers for two nodes over advancing time."""

    def __init__(self) -> None:
        super().__init__()
        self.limits = HealthSettings(
            unhealthy_after=2, healthy_after=2, eject_after_5xx=3, base_ejection_s=1.5, max_ejection_s=4.0
        )
        self.book = HealthBook(self.limits)
        self.now = 0.0
        self.ejected_at: dict[str, float] = {}

    nodes = st.sampled_from(["n1", "n2"])

    @rule(seconds=st.floats(min_value=0.0, max_value=5.0))
    def wait(self, seconds: float) -> None:
        self.now += seconds

    @rule(node_id=nodes)
    def check_passed(self, node_id: str) -> None:
        self.book.check_passed(node_id)

    @rule(node_id=nodes)
    def check_failed(self, node_id: str) -> None:
        self.book.check_failed(node_id, "refused")

    @rule(node_id=nodes)
    def connect_failed(self, node_id: str) -> None:
        before = self.book.record(node_id).ejected_until
        self.book.connect_failed(node_id, self.now, "refused")
        record = self.book.record(node_id)
        assert not record.routable(self.now)
        if self.now < before:
            assert record.ejected_until == before  # one outage counts once
        else:
            self.ejected_at[node_id] = self.now

    @rule(node_id=nodes, status=st.sampled_from([200, 304, 404, 499, 500, 502, 503]))
    def answered(self, node_id: str, status: int) -> None:
        total = self.book.record(node_id).ejections_total
        self.book.answered(node_id, status, self.now)
        if self.book.record(node_id).ejections_total != total:
            self.ejected_at[node_id] = self.now

    @invariant()
    def ejection_length_follows_the_row(self) -> None:
        for node_id, at in self.ejected_at.items():
            record = self.book.record(node_id)
            if record.ejected_until == 0.0 or record.ejections_in_a_row == 0:
                continue  # lifted by active checks, or the row was broken by a success
            expected = min(
                self.limits.base_ejection_s * record.ejections_in_a_row, self.limits.max_ejection_s
            )
            assert record.ejected_until - at == pytest.approx(expected)

    @invariant()
    def records_are_consistent(self) -> None:
        for node_id in ("n1", "n2"):
            record = self.book.record(node_id)
            assert self.book.routable(node_id, self.now) == (record.up and self.now >= record.ejected_until)
            assert 0 <= record.ejections_in_a_row <= record.ejections_total
            assert 0 <= record.consecutive_5xx < self.limits.eject_after_5xx
            assert record.ejected_until - self.now <= self.limits.max_ejection_s + 1e-9
            if record.check_failures >= self.limits.unhealthy_after:
                assert not record.up
            if record.check_successes >= self.limits.healthy_after:
                assert record.up


HealthMachine.TestCase.settings = settings(max_examples=100, deadline=None, stateful_step_count=25)
TestHealthMachine = HealthMachine.TestCase


# The fleet: inventory + health + traffic as policy inputs, cached.


@dataclass
class ManualClock:
    """A monotonic clock the test moves by hand."""

    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


def entry(
    node_id: str,
    region: str = "us-east-1",
    *,
    capacity_rps: float = 5000.0,
    reported_utilization: float = 0.0,
) -> EdgeEntry:
    return EdgeEntry(
        node_id=node_id,
        region=region,
        url=f"http://127.0.0.1/{node_id}",
        capacity_rps=capacity_rps,
        reported_utilization=reported_utilization,
    )


def make_fleet(*entries: EdgeEntry, **health: float) -> tuple[Fleet, ManualClock]:
    clock = ManualClock()
    return Fleet(Inventory(entries), book(**health), clock=clock), clock


def healthy_ids(fleet: Fleet) -> set[str]:
    return {view.node_id for view in fleet.views() if view.healthy}


def test_views_mirror_the_inventory() -> None:
    fleet, _ = make_fleet(
        entry("a", capacity_rps=300.0, reported_utilization=0.4), entry("b", "eu-central-1")
    )
    views = {view.node_id: view for view in fleet.views()}
    assert set(views) == {"a", "b"}
    assert views["a"].region == "us-east-1"
    assert views["a"].url == "http://127.0.0.1/a"
    assert views["a"].capacity_rps == 300.0
    assert views["a"].utilization == 0.4
    assert views["b"].region == "eu-central-1"
    assert all(view.healthy for view in views.values())


def test_views_are_cached_until_the_load_refresh() -> None:
    fleet, clock = make_fleet(entry("a"))
    first = fleet.views()
    clock.now += LOAD_REFRESH_S / 2
    assert fleet.views() is first
    clock.now += LOAD_REFRESH_S
    assert fleet.views() is not first


def test_a_connect_failure_shows_at_once_and_ends_with_the_ejection() -> None:
    fleet, clock = make_fleet(entry("a"), entry("b"), base_ejection_s=2.0)
    start = clock.now
    assert healthy_ids(fleet) == {"a", "b"}
    fleet.connect_failed("a", "refused")
    assert healthy_ids(fleet) == {"b"}  # same instant: the cache was invalidated
    clock.now = start + 1.9
    assert healthy_ids(fleet) == {"b"}
    clock.now = start + 2.0  # within the refresh period, but the ejection is over
    assert healthy_ids(fleet) == {"a", "b"}


def test_a_5xx_burst_shows_at_once() -> None:
    fleet, _ = make_fleet(entry("a"), entry("b"), eject_after_5xx=2)
    fleet.views()
    fleet.answered("a", 503)
    assert healthy_ids(fleet) == {"a", "b"}
    fleet.answered("a", 500)
    assert healthy_ids(fleet) == {"b"}
    fleet.answered("b", 200)
    assert healthy_ids(fleet) == {"b"}


def test_active_checks_take_a_node_out_and_bring_it_back_at_once() -> None:
    fleet, _ = make_fleet(entry("a"), entry("b"), unhealthy_after=2, healthy_after=1)
    fleet.views()
    fleet.check_failed("a", "timeout")
    assert healthy_ids(fleet) == {"a", "b"}
    fleet.check_failed("a", "timeout")
    assert healthy_ids(fleet) == {"b"}
    fleet.check_passed("a")
    assert healthy_ids(fleet) == {"a", "b"}


def test_inventory_changes_show_at_once_and_forget_departed_nodes() -> None:
    fleet, _ = make_fleet(entry("a"), entry("b"))
    fleet.connect_failed("b", "refused")
    fleet.sent("b")
    assert healthy_ids(fleet) == {"a"}
    fleet.inventory.replace([entry("a")])
    assert {view.node_id for view in fleet.views()} == {"a"}
    fleet.inventory.replace([entry("a"), entry("b")])
    assert healthy_ids(fleet) == {"a", "b"}  # b came back with a clean record
    assert fleet.traffic("b").requests_total == 0


def test_local_request_rate_drives_utilization() -> None:
    fleet, clock = make_fleet(entry("a", capacity_rps=50.0))
    start = clock.now
    assert fleet.views()[0].utilization == 0.0
    for index in range(100):  # 100 requests over one second
        clock.now = start + index / 100
        fleet.sent("a")
    clock.now = start + 1.0
    fleet.sent("a")  # opens the next window: the last one's rate is known
    clock.now += LOAD_REFRESH_S
    view = fleet.views()[0]
    assert view.utilization == pytest.approx(2.0, rel=0.05)
    assert view.saturated
    assert fleet.traffic("a").in_flight == 101
    clock.now += 2.5  # silence: the rate is stale and counts for nothing
    assert fleet.views()[0].utilization == 0.0


def test_reported_utilization_wins_when_larger() -> None:
    fleet, _ = make_fleet(entry("a", capacity_rps=1000.0, reported_utilization=1.1))
    fleet.sent("a")
    assert fleet.views()[0].saturated


def test_zero_capacity_counts_no_local_load() -> None:
    fleet, clock = make_fleet(entry("a", capacity_rps=0.0))
    for _ in range(5):
        fleet.sent("a")
        clock.now += 0.3
    assert fleet.views()[0].utilization == 0.0


def test_the_policy_routes_around_what_the_fleet_saw() -> None:
    world = load_world(REPO_ROOT / "deploy" / "local" / "world.toml")
    fleet, _ = make_fleet(entry("seoul-a", "ap-northeast-2"), entry("tokyo-a", "ap-northeast-1"))
    korea = world.country("KR")
    client = ClientPlace(address="127.1.0.1", latitude=korea.latitude, longitude=korea.longitude)
    policy = RoutingPolicy(world)
    assert policy.plan(client, fleet.views())[0].node.node_id == "seoul-a"
    fleet.connect_failed("seoul-a", "refused")
    assert [c.node.node_id for c in policy.plan(client, fleet.views())] == ["tokyo-a"]
