"""The registry's parser: contract messages apply; anything malformed is refused and counted."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from control_plane.gateways.registry import Message, Refusal, Registry

STATUS = {
    "gateway_id": "gw-1",
    "region": "eu-west-1",
    "online": True,
    "module_sha256": "ab" * 32,
    "module_name": "sensor-stats",
    "interval_s": 1.0,
    "readings_total": 12,
    "ts": 1.5,
}


def test_status_results_alerts_and_last_will() -> None:
    registry = Registry()
    base = "edgecdn/v1/eu-west-1/gw-1"
    assert isinstance(registry.apply(f"{base}/status", json.dumps(STATUS).encode()), Message)
    registry.apply(f"{base}/results", b'{"gateway_id": "gw-1", "batch": 1, "result": {}}')
    registry.apply(f"{base}/alerts", b'{"sensor": "temperature", "value": 40}')
    gateway = registry.get("gw-1")
    assert gateway is not None
    assert (gateway.online, gateway.module_sha256, gateway.readings_seen) == (True, "ab" * 32, 12)
    assert (gateway.results_seen, gateway.alerts_seen) == (1, 1)
    registry.apply(f"{base}/status", b'{"gateway_id": "gw-1", "online": false, "reason": "connection lost"}')
    gateway = registry.get("gw-1")
    assert gateway is not None
    assert (gateway.online, gateway.offline_reason, gateway.module_sha256) == (
        False,
        "connection lost",
        "ab" * 32,
    )


def test_refusals_carry_reasons() -> None:
    registry = Registry()
    refused = registry.apply("edgecdn/v1/eu-west-1/gw-1/status", b"not json")
    assert isinstance(refused, Refusal)
    assert "JSON" in refused.reason
    refused = registry.apply("edgecdn/v1/eu-west-1/gw-1/status", b'{"gateway_id": "gw-2", "online": true}')
    assert isinstance(refused, Refusal)
    assert "does not match" in refused.reason
    assert registry.refused == 2
    assert registry.gateways() == []


@given(topic=st.text(max_size=80), payload=st.binary(max_size=200))
def test_arbitrary_input_never_crashes(topic: str, payload: bytes) -> None:
    registry = Registry()
    result = registry.apply(topic, payload)
    assert isinstance(result, Message | Refusal)
    assert registry.refused == (1 if isinstance(result, Refusal) else 0)


@given(
    body=st.dictionaries(
        st.sampled_from([*sorted(STATUS), "x"]),
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=5),
    )
)
def test_arbitrary_status_objects_never_crash(body: dict[str, object]) -> None:
    registry = Registry()
    registry.apply("edgecdn/v1/r/g/status", json.dumps(body).encode())
    assert registry.refused + len(registry.gateways()) == 1
