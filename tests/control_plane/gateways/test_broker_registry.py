"""The registry fed from a real broker: a gateway's retained status, then its last will."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiomqtt

from control_plane.gateways.registry import Registry
from tests.control_plane.gateways.broker import mosquitto

STATUS = {"gateway_id": "gw-1", "region": "eu-west-1", "online": True, "module_sha256": "ab" * 32}
TOPIC = "edgecdn/v1/eu-west-1/gw-1/status"


async def test_retained_status_and_last_will(tmp_path: Path) -> None:
    async with mosquitto(tmp_path) as broker:
        will = aiomqtt.Will(
            TOPIC, json.dumps({**STATUS, "online": False, "reason": "connection lost"}), 1, True
        )
        gateway = aiomqtt.Client(
            "127.0.0.1", broker.port, username="gateway", password=broker.passwords["gateway"],
            protocol=aiomqtt.ProtocolVersion.V5, will=will,
        )  # fmt: skip
        await gateway.__aenter__()
        await gateway.publish(TOPIC, json.dumps(STATUS), qos=1, retain=True)
        registry = Registry()
        async with aiomqtt.Client(
            "127.0.0.1", broker.port, username="control-plane", password=broker.passwords["control-plane"],
            protocol=aiomqtt.ProtocolVersion.V5,
        ) as cp:  # fmt: skip
            await cp.subscribe("edgecdn/v1/+/+/status", qos=1)
            async with asyncio.timeout(5):
                async for message in cp.messages:
                    registry.apply(str(message.topic), bytes(message.payload))
                    gw = registry.get("gw-1")
                    if gw is not None and gw.online:
                        gateway._client._sock.close()  # type: ignore[union-attr]
                    elif gw is not None:
                        break
        gw = registry.get("gw-1")
        assert gw is not None
        assert (gw.online, gw.offline_reason) == (False, "connection lost")
