"""The pure region view of IoT gateways: order, duplicates, bounds, refusal labels."""

from __future__ import annotations

from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from edge_node.iot_view import ALERTS_PER_GATEWAY, ALERTS_PER_REGION, RegionGateways, refusal_label
from iotwire.payloads import Message, Refusal, encode, parse_message
from iotwire.topics import Kind, topic

REGION = "ap-northeast-2"


def message(kind: Kind, body: dict[str, Any], *, gateway: str = "gw-1", region: str = REGION) -> Message:
    parsed = parse_message(
        topic(region, gateway, kind), encode({"gateway_id": gateway, "region": region, **body})
    )
    assert isinstance(parsed, Message), parsed
    return parsed


def status(ts: float, *, online: bool = True, gateway: str = "gw-1", **extra: Any) -> Message:
    return message("status", {"online": online, "ts": ts, **extra}, gateway=gateway)


def alert(ts: float, value: float = 40.0, gateway: str = "gw-1") -> Message:
    return message(
        "alerts", {"ts": ts, "sensor": "temperature", "value": value, "threshold": 35.0}, gateway=gateway
    )


def test_status_result_and_alert_make_a_gateway() -> None:
    view = RegionGateways(REGION)
    assert view.apply(status(1.0, module_sha256="ab" * 32, readings_total=10, alerts_total=1)) == ""
    assert (
        view.apply(message("results", {"ts": 2.0, "batch": 3, "result": {"temperature": {"avg": 21.0}}}))
        == ""
    )
    assert view.apply(alert(3.0)) == ""
    (gateway,) = view.document()["gateways"]
    assert gateway["online"] is True
    assert gateway["module_sha256"] == "ab" * 32
    assert gateway["result"] == {"temperature": {"avg": 21.0}}
    assert gateway["result_ts"] == 2.0
    assert gateway["last_seen"] == 3.0
    assert gateway["readings_total"] == 10
    assert [a["value"] for a in gateway["alerts"]] == [40.0]
    assert view.document()["alerts"][0]["gateway_id"] == "gw-1"


def test_a_late_status_does_not_bring_a_gateway_back_and_offline_says_why() -> None:
    view = RegionGateways(REGION)
    view.apply(status(5.0, online=False, reason="connection lost"))
    view.apply(status(4.0, online=True))
    state = view.gateway("gw-1")
    assert state is not None
    assert state.online is False
    assert state.offline_reason == "connection lost"


def test_another_regions_message_is_refused() -> None:
    view = RegionGateways(REGION)
    other = parse_message(topic("eu-central-1", "gw-9", "status"), encode({"online": True, "ts": 1.0}))
    assert isinstance(other, Message)
    assert view.apply(other) == "other_region"
    assert len(view) == 0


@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.floats(0, 1000, allow_nan=False), st.sampled_from([36.0, 40.0])),
        max_size=120,
    )
)
def test_alerts_stay_bounded_newest_first_and_duplicates_count_once(
    alerts: list[tuple[int, float, float]],
) -> None:
    view = RegionGateways(REGION)
    for gw, ts, value in alerts + alerts:  # every alert delivered twice (QoS 1)
        view.apply(alert(ts, value, gateway=f"gw-{gw}"))
    document = view.document()
    assert len(document["alerts"]) <= ALERTS_PER_REGION
    region_ts = [a["ts"] for a in document["alerts"]]
    assert region_ts == sorted(region_ts, reverse=True)
    for gateway in document["gateways"]:
        assert len(gateway["alerts"]) <= ALERTS_PER_GATEWAY
        distinct = {(ts, value) for gw, ts, value in alerts if f"gw-{gw}" == gateway["gateway_id"]}
        assert len(gateway["alerts"]) == min(ALERTS_PER_GATEWAY, len(distinct))
        assert gateway["alerts_seen"] <= len(distinct)
        kept = sorted(distinct, reverse=True)[:ALERTS_PER_GATEWAY]
        assert [(a["ts"], a["value"]) for a in gateway["alerts"]] == kept


@given(st.permutations([1.0, 2.0, 3.0, 4.0, 5.0]))
def test_the_newest_result_and_status_win_whatever_the_order(order: list[float]) -> None:
    view = RegionGateways(REGION)
    for ts in order:
        view.apply(message("results", {"ts": ts, "result": {"n": ts}}))
        view.apply(status(ts, online=ts != 5.0, reason="stopped"))
    state = view.gateway("gw-1")
    assert state is not None
    assert state.result == {"n": 5.0}
    assert state.online is False
    assert state.last_seen == 5.0


def test_refusals_have_stable_labels() -> None:
    cases = {
        b"not json": "not_json",
        b"[1]": "not_object",
        encode({"online": "yes"}): "missing_field",
        encode({"gateway_id": "gw-2", "online": True}): "id_mismatch",
        b"x" * (65 * 1024): "too_large",
    }
    for payload, label in cases.items():
        refused = parse_message(topic(REGION, "gw-1", "status"), payload)
        assert isinstance(refused, Refusal)
        assert refusal_label(refused.reason) == label, refused.reason
    bad_topic = parse_message("edgecdn/v1/x", b"{}")
    assert isinstance(bad_topic, Refusal)
    assert refusal_label(bad_topic.reason) == "bad_topic"
