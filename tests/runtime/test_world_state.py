"""world.json: the documented schema, round-trip, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from runtime.errors import WorldStateError
from runtime.world_state import (
    EdgeNodeEntry,
    GatewayEntry,
    ProcessEntry,
    WorldState,
    read_world_state,
    write_world_state,
)


def full_state() -> WorldState:
    return WorldState(
        world_file="deploy/local/world.toml",
        supervisor_pid=7,
        control_plane_address="127.0.0.1:5000",
        processes=(
            ProcessEntry(name="control-plane", pid=8, log="x.log"),
            ProcessEntry(
                name="edge-node eu-central-1-a",
                pid=9,
                log="n.log",
                state="restarting",
                restarts=2,
                since=1764868148.25,
                last_exit="killed by SIGKILL",
                addresses={"http": "http://127.0.0.1:1"},
            ),
        ),
        router_url="http://127.0.0.1:8000",
        edge_nodes=(
            EdgeNodeEntry(node_id="eu-central-1-a", region="eu-central-1", url="http://127.0.0.1:1"),
        ),
        tokens={"operator": "op", "viewer": "v"},
        mqtt_url="mqtt://127.0.0.1:1883",
        mqtt_protocol="5",
        gateways=(
            GatewayEntry(
                gateway_id="eu-central-1-gw-1", region="eu-central-1", process="iot-gateway eu-central-1"
            ),
        ),
        fault_relay_url="http://127.0.0.1:9000",
        events_file=".edgecdn/chaos-events.jsonl",
    )


def test_round_trip(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    write_world_state(path, full_state())
    assert read_world_state(path) == full_state()


def test_documented_keys(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    write_world_state(path, full_state())
    data = json.loads(path.read_text())
    assert data["control_plane"]["address"] == "127.0.0.1:5000"
    assert data["router"]["url"] == "http://127.0.0.1:8000"
    assert data["edge_nodes"] == [
        {"node_id": "eu-central-1-a", "region": "eu-central-1", "url": "http://127.0.0.1:1"}
    ]
    assert data["tokens"]["operator"] == "op"
    assert data["mqtt"] == {"url": "mqtt://127.0.0.1:1883", "protocol": "5"}
    assert data["gateways"] == [
        {"gateway_id": "eu-central-1-gw-1", "region": "eu-central-1", "process": "iot-gateway eu-central-1"}
    ]
    assert data["schema_version"] == 1
    assert data["fault_relay"]["url"] == "http://127.0.0.1:9000"
    assert data["events_file"] == ".edgecdn/chaos-events.jsonl"
    assert data["processes"][1] == {
        "name": "edge-node eu-central-1-a",
        "pid": 9,
        "log": "n.log",
        "state": "restarting",
        "restarts": 2,
        "since": 1764868148.25,
        "last_exit": "killed by SIGKILL",
        "addresses": {"http": "http://127.0.0.1:1"},
    }


def test_a_process_is_found_by_name() -> None:
    assert full_state().process("control-plane") == ProcessEntry(name="control-plane", pid=8, log="x.log")
    assert full_state().process("edge-router") is None


def test_processes_of_an_older_world_json_read_with_defaults(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    write_world_state(path, full_state())
    data = json.loads(path.read_text())
    data["processes"] = [{"name": "control-plane", "pid": 8, "log": "x.log"}]
    path.write_text(json.dumps(data))
    entry = read_world_state(path).processes[0]
    assert (entry.state, entry.restarts, entry.last_exit, dict(entry.addresses)) == ("up", 0, None, {})


def test_optional_parts_are_omitted(tmp_path: Path) -> None:
    path = tmp_path / "world.json"
    write_world_state(path, WorldState(world_file="w", supervisor_pid=1, control_plane_address="a:1"))
    data = json.loads(path.read_text())
    assert "router" not in data
    assert "mqtt" not in data
    assert read_world_state(path).router_url is None


def test_no_world_says_how_to_start_one(tmp_path: Path) -> None:
    with pytest.raises(WorldStateError, match="make up"):
        read_world_state(tmp_path / "world.json")


@pytest.mark.parametrize("content", ["nope", "[]", json.dumps({"world_file": "w"})])
def test_malformed_state_is_a_clear_error(tmp_path: Path, content: str) -> None:
    path = tmp_path / "world.json"
    path.write_text(content)
    with pytest.raises(WorldStateError, match=str(path)):
        read_world_state(path)
