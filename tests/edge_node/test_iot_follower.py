"""The follower's handling of delivered messages, without a broker: refusals counted by
reason and logged at most once a minute per reason; the answer's shape before any broker."""

from __future__ import annotations

import json
import logging

import pytest
from prometheus_client import CollectorRegistry

from cpclient import Backoff
from edge_node.geo_headers import NodeIdentity
from edge_node.iot import IotFollower
from iotwire.link import BrokerLink
from iotwire.payloads import encode
from iotwire.topics import topic

REGION = "ap-northeast-2"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def follower(registry: CollectorRegistry, clock: Clock) -> IotFollower:
    return IotFollower(
        link=BrokerLink(url="mqtt://127.0.0.1:1", username="control-plane", password="secret-password"),
        node=NodeIdentity(node_id=f"{REGION}-a", region=REGION, pop="Seoul"),
        registry=registry,
        backoff=Backoff(),
        clock=clock,
    )


def test_refusals_are_counted_and_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    registry, clock = CollectorRegistry(), Clock()
    iot = follower(registry, clock)
    caplog.set_level(logging.WARNING, logger="edge_node.iot")
    bad = topic(REGION, "gw-1", "results")
    for _ in range(3):
        iot.take(bad, b"{not json")
    iot.take(bad, encode({"ts": 1.0}))
    assert registry.get_sample_value("edge_iot_messages_refused_total", {"reason": "not_json"}) == 3
    assert registry.get_sample_value("edge_iot_messages_refused_total", {"reason": "missing_field"}) == 1
    assert [r.getMessage().split(")")[0] for r in caplog.records] == [
        "refused a gateway message (not_json",
        "refused a gateway message (missing_field",
    ]
    clock.now += 61
    iot.take(bad, b"{not json")
    assert len(caplog.records) == 3


def test_the_answer_before_any_broker_is_an_empty_region() -> None:
    iot = follower(CollectorRegistry(), Clock())
    iot.take(topic(REGION, "gw-1", "status"), encode({"online": True, "ts": 5.0}))
    answer = iot.answer()
    assert answer.status == 200
    document = json.loads(answer.body)
    assert document["broker"] == "reconnecting"
    assert [g["gateway_id"] for g in document["gateways"]] == ["gw-1"]
    assert set(document) >= {"region", "node_id", "broker", "gateways", "alerts"}
