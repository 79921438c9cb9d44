"""Faults and their targets, pure: what a target names in a world, and what is refused."""

from __future__ import annotations

from dataclasses import replace

import pytest

from runtime.world_state import EdgeNodeEntry, GatewayEntry, ProcessEntry, WorldState
from simulator.chaos.faults import Fault, parse_loss, resolve_processes, resolve_region
from simulator.errors import ChaosError

NODES = (
    ("ap-northeast-2-a", "ap-northeast-2"),
    ("ap-northeast-2-b", "ap-northeast-2"),
    ("us-east-1-a", "us-east-1"),
)


def world() -> WorldState:
    names = [
        "control-plane", "fault-relay", *(f"edge-node {node}" for node, _ in NODES), "edge-router",
        "mqtt-broker", "iot-gateway ap-northeast-2",
    ]  # fmt: skip
    return WorldState(
        world_file="w.toml",
        supervisor_pid=1,
        control_plane_address="127.0.0.1:1",
        processes=tuple(ProcessEntry(name=name, pid=100 + i, log="") for i, name in enumerate(names)),
        edge_nodes=tuple(
            EdgeNodeEntry(node_id=node, region=region, url="http://x:1") for node, region in NODES
        ),
        gateways=(
            GatewayEntry(
                gateway_id="ap-northeast-2-gw-1",
                region="ap-northeast-2",
                process="iot-gateway ap-northeast-2",
            ),
        ),
    )


@pytest.mark.parametrize(
    ("target", "names"),
    [
        ("control-plane", ["control-plane"]),
        ("router", ["edge-router"]),
        ("fault-relay", ["fault-relay"]),
        ("ap-northeast-2-a", ["edge-node ap-northeast-2-a"]),
        ("edge-node us-east-1-a", ["edge-node us-east-1-a"]),
        ("ap-northeast-2", ["edge-node ap-northeast-2-a", "edge-node ap-northeast-2-b"]),
        ("broker", ["mqtt-broker"]),
        ("ap-northeast-2-gw-1", ["iot-gateway ap-northeast-2"]),
        ("iot-gateway ap-northeast-2", ["iot-gateway ap-northeast-2"]),
    ],
)
def test_targets_name_processes_as_people_say_them(target: str, names: list[str]) -> None:
    assert [entry.name for entry in resolve_processes(world(), target)] == names


def test_an_unknown_target_lists_what_there_is() -> None:
    with pytest.raises(ChaosError, match=r"no process or region 'xx-nowhere-1'.*control-plane.*us-east-1-a"):
        resolve_processes(world(), "xx-nowhere-1")


def test_a_world_without_a_broker_says_so() -> None:
    without = world()
    without = replace(without, processes=tuple(p for p in without.processes if p.name != "mqtt-broker"))
    with pytest.raises(ChaosError, match="no MQTT broker"):
        resolve_processes(without, "broker")


def test_network_faults_take_a_region() -> None:
    assert resolve_region(world(), "us-east-1") == "us-east-1"
    with pytest.raises(ChaosError, match="us-east-1-a is a node of us-east-1"):
        resolve_region(world(), "us-east-1-a")
    with pytest.raises(ChaosError, match="regions: ap-northeast-2, us-east-1"):
        resolve_region(world(), "eu-west-9")


@pytest.mark.parametrize(("text", "ratio"), [("5%", 0.05), ("0.05", 0.05), ("0%", 0.0), ("12.5%", 0.125)])
def test_loss_reads_as_percent_or_ratio(text: str, ratio: float) -> None:
    assert parse_loss(text) == pytest.approx(ratio)


@pytest.mark.parametrize(
    ("fields", "problem"),
    [
        ({"action": "kill", "target": ""}, "kill needs a target"),
        ({"action": "kill", "target": "x", "for_s": 3.0}, "kill is instant"),
        ({"action": "freeze", "target": "x", "for_s": -1.0}, "--for must be a positive"),
        ({"action": "wan", "target": "r"}, "wan needs --latency or --loss"),
        ({"action": "wan", "target": "r", "loss": 1.0}, r"--loss must be within \[0%, 100%\)"),
        ({"action": "wan", "target": "r", "latency_ms": -5.0}, "--latency must not be negative"),
        ({"action": "kill", "target": "x", "signal": "HUP"}, "--signal must be one of KILL, TERM, INT"),
        ({"action": "explode", "target": "x"}, "unknown action 'explode'"),
    ],
)
def test_bad_faults_are_refused_with_the_reason(fields: dict[str, object], problem: str) -> None:
    with pytest.raises(ChaosError, match=problem):
        Fault(**fields)  # type: ignore[arg-type]


def test_a_fault_describes_itself() -> None:
    fault = Fault(action="wan", target="eu-central-1", latency_ms=200, loss=0.05, for_s=60)
    assert fault.describe() == "wan eu-central-1 +200 ms, 5% loss for 60s"
    assert fault.lasting
    assert not Fault(action="kill", target="router").lasting
