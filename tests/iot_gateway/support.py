"""Test support: start real gateway processes, watch the broker, send commands, upload modules."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt

from iotwire.link import BrokerLink, publish_properties
from iotwire.payloads import Command
from iotwire.topics import topic
from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tests.mqtt_brokers import BrokerUnderTest

REPO = Path(__file__).resolve().parents[2]
SENSOR_STATS = REPO / "handlers" / "sensor-stats" / "sensor_stats.wasm"
REGION = "eu-west-1"


async def start_gateway(
    supervisor: Supervisor,
    broker: BrokerUnderTest,
    tmp_path: Path,
    *extra: str,
    name: str = "gateway",
    env: dict[str, str] | None = None,
) -> RunningChild:
    argv = (
        sys.executable, "-m", "iot_gateway", *broker.flags("gateway"), "--region", REGION,
        "--state-dir", str(tmp_path / "state"), "--interval", "50ms", "--batch", "4", "--seed", "7", *extra,
    )  # fmt: skip
    return await supervisor.start(ChildSpec(name=name, argv=argv, env=env or {}, ready_timeout_s=20))


@dataclass
class Watcher:
    """Every message on edgecdn/v1/# seen by a control-plane client, newest last."""

    client: aiomqtt.Client
    link: BrokerLink
    seen: list[tuple[str, dict[str, Any], aiomqtt.Message]] = field(default_factory=list)

    def of(self, gateway_id: str, kind: str) -> list[dict[str, Any]]:
        wanted = topic(REGION, gateway_id, kind)  # type: ignore[arg-type]
        return [body for name, body, _ in self.seen if name == wanted]

    async def wait(self, predicate: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
        """Poll (bounded) until ``predicate()`` is truthy; its value."""
        deadline = time.monotonic() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last messages: {self.seen[-5:]}")
            await asyncio.sleep(0.05)

    async def status(
        self, gateway_id: str, check: Callable[[dict[str, Any]], bool], what: str
    ) -> dict[str, Any]:
        def latest() -> dict[str, Any] | None:
            statuses = self.of(gateway_id, "status")
            return statuses[-1] if statuses and check(statuses[-1]) else None

        result: dict[str, Any] = await self.wait(latest, what)
        return result

    async def command(self, gateway_id: str, command: Command, *, traceparent: str = "") -> dict[str, Any]:
        """Send ``command`` and wait for its one result (v5: response topic and correlation data)."""
        await self.send(gateway_id, command, traceparent=traceparent)
        return await self.result(gateway_id, command.command_id)

    async def send(self, gateway_id: str, command: Command, *, traceparent: str = "") -> None:
        result_topic = topic(REGION, gateway_id, "cmd/result")
        properties = None
        if self.link.v5:
            properties = publish_properties(
                response_topic=result_topic,
                correlation_data=command.command_id.encode(),
                traceparent=traceparent,
            )
        payload = command.to_payload(traceparent="" if self.link.v5 else traceparent)
        await self.client.publish(topic(REGION, gateway_id, "cmd"), payload, qos=1, properties=properties)

    async def raw_command(self, gateway_id: str, payload: bytes) -> None:
        await self.client.publish(topic(REGION, gateway_id, "cmd"), payload, qos=1)

    async def result(self, gateway_id: str, command_id: str) -> dict[str, Any]:
        def found() -> dict[str, Any] | None:
            matches = [b for b in self.of(gateway_id, "cmd/result") if b.get("command_id") == command_id]
            return matches[0] if matches else None

        result: dict[str, Any] = await self.wait(found, f"the result of {command_id}")
        return result


@contextlib.asynccontextmanager
async def watching(
    broker: BrokerUnderTest, client_id: str = "watcher", *, kinds: tuple[str, ...] = ("#",)
) -> AsyncIterator[Watcher]:
    """Watch ``kinds`` (topic suffixes) of every gateway; fewer kinds for a big fleet, so the
    test reads less (the broker holds a fleet's burst for a slow reader: mqtt_broker/mosquitto.py)."""
    link = broker.link("control-plane")
    async with link.client(client_id) as client:
        watcher = Watcher(client=client, link=link)
        for kind in kinds:
            await client.subscribe("edgecdn/v1/#" if kind == "#" else f"edgecdn/v1/+/+/{kind}", qos=1)

        async def read() -> None:
            async for message in client.messages:
                with contextlib.suppress(ValueError):
                    body = json.loads(message.payload)
                    watcher.seen.append((str(message.topic), body, message))

        reader = asyncio.create_task(read(), name="watcher")
        try:
            yield watcher
        finally:
            reader.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await reader
