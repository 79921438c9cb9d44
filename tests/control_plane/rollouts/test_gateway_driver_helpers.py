"""The driver's gateway helpers, directly: whom a wave moves, its progress over nodes and
gateways, the gateway figures since the update, and what a rollback sends back."""

from __future__ import annotations

from typing import Any

from control_plane.gateways.commands import GatewayResult
from control_plane.gateways.registry import Gateway
from control_plane.rollouts.gates import Figures
from control_plane.rollouts.gateway_waves import (
    Counters,
    GatewaySend,
    combined_progress,
    counters_of,
    gateway_figures,
    modules_before,
    restore_plan,
    wave_targets,
)

OLD, NEW = "ab" * 32, "cd" * 32


def gw(gateway_id: str, region: str = "eu-west-1", **fields: Any) -> Gateway:
    return Gateway(gateway_id=gateway_id, region=region, **{"online": True, "module_sha256": OLD, **fields})


def result(
    gateway_id: str, *, ok: bool = True, message: str = "done", timed_out: bool = False
) -> GatewayResult:
    return GatewayResult(
        gateway_id=gateway_id, region="eu-west-1", ok=ok, message=message, timed_out=timed_out
    )


def test_modules_before_and_wave_targets() -> None:
    fleet = [gw("a"), gw("b", online=False, module_sha256=""), gw("c", region="ap-south-1")]
    assert modules_before(fleet, ["eu-west-1"]) == {"eu-west-1/a": OLD, "eu-west-1/b": ""}
    online, offline = wave_targets(fleet, ["eu-west-1"])
    assert [g.gateway_id for g in online] == ["a"]
    assert [g.gateway_id for g in offline] == ["b"]


def test_progress_counts_gateways_with_nodes() -> None:
    send = GatewaySend(targeted=("a", "b"))
    assert combined_progress(("n1",), ("n1",), None).expected == ("n1",)
    waiting = combined_progress(("n1",), ("n1",), send)
    assert (waiting.expected, waiting.acked, waiting.nack) == (("n1", "a", "b"), ("n1",), None)
    send.results["a"] = result("a")
    assert combined_progress(("n1",), ("n1",), send).acked == ("n1", "a")
    assert (send.done, send.first_failure()) == (False, None)
    send.results["b"] = result("b", ok=False, message="no result within 10s", timed_out=True)
    assert send.done
    assert combined_progress((), (), send).nack == ("b", "no result within 10s")


def test_no_gateway_and_no_node_is_complete() -> None:
    empty = combined_progress((), (), GatewaySend(targeted=()))
    assert (empty.expected, empty.acked, empty.nack) == ((), (), None)


def test_a_send_that_failed_is_a_nack() -> None:
    send = GatewaySend(targeted=("a",), failure="not connected to the MQTT broker")
    assert send.done
    assert send.first_failure() == ("a", "not connected to the MQTT broker")


def test_figures_are_deltas_since_the_update() -> None:
    base = {
        "a": Counters(batches=10, errors=1, rollbacks=0),
        "b": Counters(batches=50, errors=0, rollbacks=0),
    }
    now = [
        gw("a", status={"batches_total": 30}, module_errors_total=3, rollbacks_total=1),
        gw("b", status={"batches_total": 5}),  # restarted: its counters began again
        gw("c", status={"batches_total": 99}),  # no baseline: not counted
        gw("d", region="ap-south-1", status={"batches_total": 99}),
    ]
    edge = Figures(requests=100, errors=1, p99_ms=20.0)
    figures = gateway_figures(edge, base | {"d": Counters()}, now, ["eu-west-1"])
    assert figures == Figures(
        requests=100, errors=1, p99_ms=20.0, gateway_batches=25, gateway_errors=2, gateway_rollbacks=1
    )


def test_counters_fall_back_to_results_received() -> None:
    assert counters_of(gw("a", results_received=7)).batches == 7
    assert counters_of(gw("a", results_received=7, status={"batches_total": 9})).batches == 9


def test_restore_plan_skips_unchanged_unknown_and_none() -> None:
    before = {
        "eu-west-1/a": OLD,
        "eu-west-1/b": OLD,
        "eu-west-1/c": "",
        "eu-west-1/gone": OLD,
        "ap-south-1/d": OLD,
    }
    now = [
        gw("a", module_sha256=NEW),
        gw("b"),
        gw("c", module_sha256=NEW),
        gw("d", "ap-south-1", module_sha256=NEW),
    ]
    assert restore_plan(before, "eu-west-1", now) == {OLD: ("a",)}
    assert restore_plan(before, "ap-south-1", now) == {OLD: ("d",)}
