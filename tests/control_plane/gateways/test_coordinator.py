"""The coordinator against a real broker (Mosquitto with MQTT v5 and amqtt with 3.1.1): it
learns gateways from retained status, follows last wills, sends commands and collects each
result, refuses bad commands before publishing, and counts malformed messages."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import format_trace_id

from control_plane.gateways.commands import CommandSpec, Targets
from control_plane.gateways.coordinator import Coordinator
from control_plane.gateways.errors import (
    InvalidCommandError,
    NoGatewaysMatchError,
    UnknownGatewaysError,
    UnknownModuleError,
)
from tests.control_plane.gateways.peers import DIGEST, Fake, Peers, until
from tests.mqtt_brokers import BrokerUnderTest

PING = CommandSpec(kind="ping")
EU = [Fake(gateway_id=f"eu-gw-{i}", region="eu-west-1", labels={"site": f"s{i % 2}"}) for i in range(3)]
AP = [Fake(gateway_id="ap-gw-1", region="ap-northeast-2", labels={"site": "s0"})]


async def test_learns_sends_and_collects(broker: BrokerUnderTest, coordinator: Coordinator) -> None:
    async with Peers(broker.link("gateway"), [*EU, *AP]) as peers:
        await until(lambda: len(coordinator.gateways()) == 4)
        gateway = coordinator.registry.get("eu-gw-1")
        assert gateway is not None
        assert (gateway.online, gateway.module_sha256, dict(gateway.labels)) == (True, DIGEST, {"site": "s1"})
        tracer = TracerProvider().get_tracer("test")
        with tracer.start_as_current_span("edgectl") as span:
            results = await coordinator.send(PING, Targets(regions=("eu-west-1",)), 5)
        assert [(r.gateway_id, r.ok, r.timed_out) for r in results] == [
            (g.gateway_id, True, False) for g in EU
        ]
        assert results[0].status["gateway_id"] == "eu-gw-0"
        # One trace: the command carries the caller's trace id (a v5 property or a payload key).
        trace_id = format_trace_id(span.get_span_context().trace_id)
        assert {tp.split("-")[1] for _, _, tp in peers.seen.commands} == {trace_id}

        labelled = await coordinator.send(
            CommandSpec(kind="update_module", sha256=DIGEST), Targets(labels={"site": "s0"}), 5
        )
        assert sorted(r.gateway_id for r in labelled) == ["ap-gw-1", "eu-gw-0", "eu-gw-2"]
        by_id = await coordinator.send(
            CommandSpec(kind="set_interval", interval_s=5), Targets(gateway_ids=("ap-gw-1",)), 5
        )
        assert [r.ok for r in by_id] == [True]


async def test_offline_by_last_will_and_timeouts(broker: BrokerUnderTest, coordinator: Coordinator) -> None:
    silent = Fake(gateway_id="silent-gw", region="eu-west-1")
    async with (
        Peers(broker.link("gateway"), [EU[0]]) as doomed,
        Peers(broker.link("gateway"), [silent], answer=lambda _g, _c: (True, "never seen")) as quiet,
    ):
        await until(lambda: len(coordinator.gateways()) == 2)
        doomed.kill()
        await until(lambda: not _online(coordinator, "eu-gw-0"))
        gone = coordinator.registry.get("eu-gw-0")
        assert gone is not None
        assert gone.offline_reason == "connection lost"
        # The offline gateway gets a clear result at once; the silent one times out.
        quiet._answer = _never
        results = await coordinator.send(PING, Targets(all=True), 0.5)
        assert [(r.gateway_id, r.ok, r.timed_out) for r in results] == [
            ("eu-gw-0", False, True),
            ("silent-gw", False, True),
        ]
        assert "gateway offline since" in results[0].message
        assert "connection lost" in results[0].message
        assert results[1].message == "no result within 0.5s"


def _never(_gateway: Fake, _command: dict[str, object]) -> tuple[bool, str]:
    raise RuntimeError("a gateway that never answers")  # the peer's task dies: no result


def _online(coordinator: Coordinator, gateway_id: str) -> bool:
    gateway = coordinator.registry.get(gateway_id)
    return gateway is not None and gateway.online


async def test_refusals_before_publishing(broker: BrokerUnderTest, coordinator: Coordinator) -> None:
    async with Peers(broker.link("gateway"), EU) as peers:
        await until(lambda: len(coordinator.gateways()) == 3)
        with pytest.raises(UnknownGatewaysError, match="unknown gateway id: nope"):
            await coordinator.send(PING, Targets(gateway_ids=("eu-gw-0", "nope")))
        with pytest.raises(UnknownGatewaysError, match="mars-1"):
            await coordinator.send(PING, Targets(regions=("mars-1",)))
        with pytest.raises(NoGatewaysMatchError):
            await coordinator.send(PING, Targets(labels={"site": "nowhere"}))
        with pytest.raises(UnknownModuleError, match="not in the registry"):
            await coordinator.send(CommandSpec(kind="update_module", sha256="cd" * 32), Targets(all=True))
        with pytest.raises(InvalidCommandError, match="sha256"):
            await coordinator.send(CommandSpec(kind="update_module", sha256="XY"), Targets(all=True))
        with pytest.raises(InvalidCommandError, match="interval"):
            await coordinator.send(CommandSpec(kind="set_interval", interval_s=7200), Targets(all=True))
        with pytest.raises(InvalidCommandError, match="target"):
            await coordinator.send(PING, Targets())
        assert peers.seen.commands == []


async def test_malformed_messages_are_counted(broker: BrokerUnderTest, coordinator: Coordinator) -> None:
    async with Peers(broker.link("gateway"), [EU[0]]) as peer:
        await until(lambda: len(coordinator.gateways()) == 1)
        base = "edgecdn/v1/eu-west-1/eu-gw-0"
        await peer.publish_raw(f"{base}/results", b"not json")
        await peer.publish_raw(f"{base}/results", b"[1]")
        await peer.publish_raw(f"{base}/alerts", b'{"sensor": "t"}')
        await peer.publish_raw(f"{base}/cmd/result", b'{"command_id": "c-1"}')
        await peer.publish_raw(f"{base}/results", b'{"result": {}}')
        await until(lambda: coordinator.registry.refused == 4)
        assert coordinator.refused_by_reason() == {
            "results: not UTF-8 JSON": 1,
            "results: payload is not a JSON object": 1,
            "alerts: alerts need a ... and a numeric ...": 1,
            "cmd/result: a command result needs ..., ... and a boolean ...": 1,
        }
        await until(lambda: _results(coordinator) == 1)
        assert _online(coordinator, "eu-gw-0")


def _results(coordinator: Coordinator) -> int:
    gateway = coordinator.registry.get("eu-gw-0")
    return 0 if gateway is None else gateway.results_received
