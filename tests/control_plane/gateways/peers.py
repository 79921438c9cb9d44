"""Test peers that speak the gateway side of docs/iot.md over a real broker: a retained status
(and a last will), and one ``cmd/result`` per ``cmd``. Not the gateway process (that is
``iot_gateway``): just enough of the wire protocol to drive the coordinator.

One ``Peers`` connection can stand in for many gateways (the scale test); a single-gateway
peer also sets the contract's last will, and ``kill()`` drops its socket without DISCONNECT.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import aiomqtt

from iotwire.link import BrokerLink, publish_properties, response_of, traceparent_of
from iotwire.payloads import BadCommand, CommandResult, encode, parse_command
from iotwire.topics import parse_topic, subscription, topic

DIGEST = "ab" * 32


@dataclass(frozen=True, slots=True, kw_only=True)
class Fake:
    """One simulated gateway."""

    gateway_id: str
    region: str
    labels: Mapping[str, str] = field(default_factory=dict)
    module_sha256: str = DIGEST

    def status(self, **extra: Any) -> dict[str, Any]:
        return {
            "gateway_id": self.gateway_id, "region": self.region, "online": True,
            "module_sha256": self.module_sha256, "module_name": "sensor-stats",
            "sensors": ["temperature"], "interval_s": 1.0, "readings_total": 10, "alerts_total": 1,
            "module_errors_total": 0, "rollbacks_total": 0, "labels": dict(self.labels),
            "ts": time.time(), **extra,
        }  # fmt: skip


@dataclass(slots=True)
class Seen:
    """What the peers received: commands by gateway, with their traceparent."""

    commands: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)


Answer = Callable[[Fake, dict[str, Any]], tuple[bool, str]]


def always_ok(_gateway: Fake, _command: dict[str, Any]) -> tuple[bool, str]:
    return True, "done"


class Peers:
    """Gateways on one broker connection; ``answer`` decides each command's result."""

    def __init__(
        self, link: BrokerLink, gateways: Sequence[Fake], *, answer: Answer = always_ok, name: str = ""
    ) -> None:
        self._link = link
        self._gateways = {g.gateway_id: g for g in gateways}
        self._answer = answer
        self._name = name or f"peer-{gateways[0].gateway_id}"
        self._stack = AsyncExitStack()
        self._client: aiomqtt.Client | None = None
        self.seen = Seen()

    async def __aenter__(self) -> Peers:
        will = None
        if len(self._gateways) == 1:
            (only,) = self._gateways.values()
            offline = {"gateway_id": only.gateway_id, "region": only.region, "online": False,
                       "reason": "connection lost", "ts": time.time()}  # fmt: skip
            will = aiomqtt.Will(topic(only.region, only.gateway_id, "status"), encode(offline), 1, True)
        client = self._link.client(self._name, will=will, timeout_s=1)
        self._client = await self._stack.enter_async_context(client)
        await client.subscribe(subscription("cmd"), qos=1)
        for gateway in self._gateways.values():
            await self.publish_status(gateway)
        task = asyncio.create_task(self._serve(client), name=f"{self._name}-commands")
        self._stack.push_async_callback(_cancel, task)
        return self

    async def __aexit__(self, *exc: object) -> None:
        with contextlib.suppress(aiomqtt.MqttError):  # a killed peer has no session to close
            await self._stack.aclose()

    async def publish_status(self, gateway: Fake, **extra: Any) -> None:
        assert self._client is not None
        status = topic(gateway.region, gateway.gateway_id, "status")
        await self._client.publish(status, encode(gateway.status(**extra)), qos=1, retain=True)

    async def publish_raw(self, name: str, payload: bytes) -> None:
        assert self._client is not None
        await self._client.publish(name, payload, qos=1)

    def kill(self) -> None:
        """Drop the TCP connection without DISCONNECT: the broker publishes the last will.

        A shutdown, not a close: paho reads the end of stream and closes its socket through
        aiomqtt, which unregisters it from the event loop first. Closing the descriptor behind
        the loop's back left it in the selector; the next socket given that number (gRPC's
        poller wake-up, say) was then never watched, and its calls hung.
        """
        assert self._client is not None
        self._client._client._sock.shutdown(socket.SHUT_RDWR)  # type: ignore[union-attr]

    async def _serve(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            where = parse_topic(str(message.topic))
            gateway = None if isinstance(where, str) else self._gateways.get(where.gateway_id)
            if gateway is None:
                continue
            payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
            command = parse_command(payload)
            body: dict[str, Any] = {} if isinstance(command, BadCommand) else {"kind": command.kind}
            self.seen.commands.append((gateway.gateway_id, body, traceparent_of(message, _json(payload))))
            if isinstance(command, BadCommand):
                ok, text, command_id = False, command.reason, command.command_id
            else:
                ok, text = self._answer(gateway, body)
                command_id = command.command_id
            result = CommandResult(
                command_id=command_id, gateway_id=gateway.gateway_id, ok=ok, message=text,
                status=gateway.status(),
            )  # fmt: skip
            response, correlation = response_of(message)
            properties = publish_properties(correlation_data=correlation) if self._link.v5 else None
            target = response or topic(gateway.region, gateway.gateway_id, "cmd/result")
            await client.publish(target, result.to_payload(), qos=1, properties=properties)


def _json(payload: bytes) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


async def _cancel(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def until(condition: Callable[[], bool | Awaitable[bool]], *, timeout_s: float = 15.0) -> None:
    """Poll ``condition`` until it holds (bounded: fails the test after ``timeout_s``)."""
    async with asyncio.timeout(timeout_s):
        while True:
            value = condition()
            if isinstance(value, Awaitable):
                value = await value
            if value:
                return
            await asyncio.sleep(0.02)
