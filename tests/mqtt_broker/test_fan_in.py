"""The control plane subscribes to the whole fleet: the broker must hold a fleet's worth of
messages for one subscriber that is behind (here: away, with a persistent session, which the
broker bounds by the same per-client queue as a slow reader) and lose none of them."""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path

import aiomqtt
import pytest

from simulator.supervisor import Supervisor
from tests.mqtt_brokers import ENGINES, start_broker

# Mosquitto's default bound was 1000 queued messages per client; a fleet is larger.
BURST = 3000
TOPIC = "edgecdn/v1/eu-west-1/{}/status"


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_fleet_sized_burst_waits_whole_for_its_subscriber(
    supervisor: Supervisor, tmp_path: Path, engine: str
) -> None:
    broker = await start_broker(supervisor, tmp_path, engine)
    link = broker.link("control-plane")

    def subscriber() -> aiomqtt.Client:
        # MQTT 3.1.1 with clean_session=False on both brokers: the session outlives the connection.
        return aiomqtt.Client(
            link.host, link.port, identifier="fan-in", username=link.username, password=link.password,
            protocol=aiomqtt.ProtocolVersion.V311, clean_session=False,
        )  # fmt: skip

    async with subscriber() as client:
        await client.subscribe("edgecdn/v1/+/+/status", qos=1)
    async with broker.link("gateway").client("fleet") as fleet:
        for n in range(BURST):
            await fleet.publish(TOPIC.format(f"gw-{n}"), b"{}", qos=1)

    received: set[str] = set()
    async with subscriber() as client:

        async def read() -> None:
            async for message in client.messages:
                received.add(str(message.topic))
                if len(received) == BURST:
                    return

        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(read(), timeout=30)
    assert len(received) == BURST, f"{BURST - len(received)} of {BURST} messages lost"
