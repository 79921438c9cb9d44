"""The pure registry: contract messages apply, malformed ones are refused and counted by
reason, and the liveness rule (offline by last will, or after 3 silent status periods)."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from control_plane.gateways.registry import Message, Refusal, Registry, reason_key

BASE = "edgecdn/v1/eu-west-1/gw-1"
STATUS = {
    "gateway_id": "gw-1",
    "region": "eu-west-1",
    "online": True,
    "module_sha256": "ab" * 32,
    "module_name": "sensor-stats",
    "sensors": ["temperature", 3],
    "labels": {"site": "plant-3", "bad": 1},
    "interval_s": 1.0,
    "readings_total": 12,
    "alerts_total": 2,
    "module_errors_total": 4,
    "rollbacks_total": 1,
    "ts": 1.5,
}


def status(**changes: object) -> bytes:
    return json.dumps({**STATUS, **changes}).encode()


def test_status_results_alerts_and_last_will() -> None:
    registry = Registry()
    assert isinstance(registry.apply(f"{BASE}/status", status(), 100.0), Message)
    registry.apply(f"{BASE}/results", b'{"gateway_id": "gw-1", "batch": 1, "result": {}}', 101.0)
    registry.apply(f"{BASE}/alerts", b'{"sensor": "temperature", "value": 40}', 101.0)
    gateway = registry.get("gw-1")
    assert gateway is not None
    assert (gateway.online, gateway.module_sha256, gateway.readings_total, gateway.last_seen) == (
        True, "ab" * 32, 12, 100.0,
    )  # fmt: skip
    assert (gateway.sensors, dict(gateway.labels)) == (("temperature",), {"site": "plant-3"})
    assert (gateway.results_received, gateway.alerts_received) == (1, 1)
    registry.apply(
        f"{BASE}/status", b'{"gateway_id": "gw-1", "online": false, "reason": "connection lost"}', 102.0
    )
    gateway = registry.get("gw-1")
    assert gateway is not None
    assert (gateway.online, gateway.offline_reason, gateway.offline_since, gateway.module_sha256) == (
        False, "connection lost", 102.0, "ab" * 32,
    )  # fmt: skip


def test_offline_after_three_silent_status_periods() -> None:
    registry = Registry(status_period_s=10, missed_allowed=3)
    registry.apply(f"{BASE}/status", status(), 100.0)
    assert registry.sweep(130.0) == []
    (gone,) = registry.sweep(130.5)
    assert (gone.online, gone.offline_reason, gone.offline_since) == (False, "no status for 30s", 100.0)
    assert registry.sweep(200.0) == []  # marked once
    registry.apply(f"{BASE}/status", status(), 201.0)
    gateway = registry.get("gw-1")
    assert gateway is not None
    assert (gateway.online, gateway.offline_reason) == (True, "")


def test_refusals_carry_reasons_and_are_counted_by_reason() -> None:
    registry = Registry()
    refused = registry.apply(f"{BASE}/status", b"not json", 1.0)
    assert isinstance(refused, Refusal)
    assert "JSON" in refused.reason
    registry.apply(f"{BASE}/status", b"also not json", 1.0)
    refused = registry.apply(f"{BASE}/status", b'{"gateway_id": "gw-2", "online": true}', 1.0)
    assert isinstance(refused, Refusal)
    assert "does not match" in refused.reason
    registry.apply(f"{BASE}/telemetry", b'{"readings": []}', 1.0)
    assert registry.refused_by_reason() == {
        "status: not UTF-8 JSON": 2,
        "status: gateway_id ... does not match the topic": 1,
        "telemetry: unexpected kind ...": 1,
    }
    assert registry.gateways() == []


def test_region_health() -> None:
    registry = Registry()
    registry.apply(f"{BASE}/status", status(), 1.0)
    registry.apply("edgecdn/v1/eu-west-1/gw-2/status", status(gateway_id="gw-2", module_sha256=""), 1.0)
    registry.apply("edgecdn/v1/eu-west-1/gw-2/status", b'{"online": false, "reason": "stopped"}', 2.0)
    health = registry.region_health()["eu-west-1"]
    assert (health.gateways, health.online, health.module_errors_total, health.rollbacks_total) == (
        2,
        1,
        8,
        2,
    )
    assert dict(health.modules) == {"ab" * 32: 1, "": 1}


def test_reason_keys_drop_particulars() -> None:
    assert (
        reason_key("status", "payload of 70000 bytes is over 64 KiB")
        == "status: payload of N bytes is over N KiB"
    )
    assert reason_key("results", "not UTF-8 JSON: Expecting value: line 1") == "results: not UTF-8 JSON"


TOPICS = st.sampled_from(
    [f"{BASE}/status", f"{BASE}/results", f"{BASE}/alerts", "edgecdn/v1/eu-west-1/gw-2/status", "x/y"]
)
VALUES = st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5)
BODIES = st.dictionaries(st.sampled_from([*sorted(STATUS), "reason", "result", "value", "x"]), VALUES)


@given(topic=st.text(max_size=80), payload=st.binary(max_size=200))
def test_arbitrary_input_never_crashes(topic: str, payload: bytes) -> None:
    registry = Registry()
    result = registry.apply(topic, payload, 1.0)
    assert isinstance(result, Message | Refusal)
    assert registry.refused == (1 if isinstance(result, Refusal) else 0)


@given(
    steps=st.lists(
        st.tuples(TOPICS, BODIES | st.just(STATUS), st.floats(min_value=0, max_value=100)), max_size=30
    )
)
def test_invariants(steps: list[tuple[str, dict[str, object], float]]) -> None:
    """Every message is applied or refused (never both, never lost); gateways are keyed by the
    topic's id and region; a gateway online after a sweep was heard from within the limit."""
    registry = Registry(status_period_s=10, missed_allowed=3)
    applied = 0
    now = 0.0
    for topic, body, advance in steps:
        now += advance
        payload = json.dumps(body, allow_nan=True).encode()
        if isinstance(registry.apply(topic, payload, now), Message):
            applied += 1
        registry.sweep(now)
        for gateway in registry.gateways():
            assert topic.startswith("x/") or gateway.region == "eu-west-1"
            assert not gateway.online or now - gateway.last_seen <= registry.silence_limit_s
            assert gateway.online or gateway.offline_reason
            assert min(gateway.readings_total, gateway.module_errors_total, gateway.rollbacks_total) >= 0
    assert applied + registry.refused == len(steps)
    assert sum(registry.refused_by_reason().values()) == registry.refused
    ids = [g.gateway_id for g in registry.gateways()]
    assert sorted(ids) == ids
