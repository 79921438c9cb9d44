"""The aiomqtt adapter of one gateway: presence with a last will, the sampler, the batch
publisher, commands with MQTT v5 response topic and correlation data (or, under 3.1.1, the
gateway's own ``cmd/result`` topic and the payload's ``traceparent``), and reconnects.

Each gateway has its own MQTT session; a failure in one never reaches the others: every
error of a session ends in a back-off and a reconnect, never in the process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import random
import time
from typing import Any

import aiomqtt

from cpclient.backoff import Backoff
from iot_gateway.gateway import Batch, Gateway
from iot_gateway.metrics import GatewayMetrics
from iot_gateway.telemetry import GatewayTelemetry
from iotwire.link import BrokerLink, publish_properties, response_of, traceparent_of
from iotwire.payloads import BadCommand, Command, CommandResult, encode, parse_command
from iotwire.topics import Kind, topic

logger = logging.getLogger(__name__)
PUBLISH_TIMEOUT_S = 10.0
# The last word of a gateway that is stopping ("offline: stopped"): a broker that is gone (the
# world stopping together, or killed) must not hold the gateway's exit for PUBLISH_TIMEOUT_S;
# its last will says "offline" anyway.
GOODBYE_TIMEOUT_S = 1.0
# The sampler wakes at least this often, so a set_interval takes effect soon, and at most
# this often, so a fast interval costs one wake-up per tick, not one per sample.
MAX_TICK_S = 1.0
MIN_TICK_S = 0.01
# Readings per telemetry payload: ~80 bytes each, so well under 64 KiB.
TELEMETRY_SLICE = 500


class GatewaySession:
    def __init__(
        self,
        gateway: Gateway,
        *,
        link: BrokerLink,
        metrics: GatewayMetrics,
        telemetry: GatewayTelemetry,
        backoff: Backoff,
        rng: random.Random,
    ) -> None:
        self.gateway = gateway
        self._link = link
        self._metrics = metrics
        self._telemetry = telemetry
        self._backoff = backoff
        self._rng = rng
        self._client: aiomqtt.Client | None = None
        self._readings_waiting = asyncio.Event()
        self._sample_now = asyncio.Event()
        self.sessions = 0

    def _topic(self, kind: Kind) -> str:
        return topic(self.gateway.region, self.gateway.gateway_id, kind)

    async def run(self, stop: asyncio.Event) -> None:
        async with asyncio.TaskGroup() as group:
            sampler = group.create_task(self._sample(), name=f"sampler-{self.gateway.gateway_id}")
            await self._sessions(stop)
            sampler.cancel()

    async def _sample(self) -> None:
        gateway = self.gateway
        while True:
            waiting = gateway.take_samples(time.monotonic())
            if waiting >= gateway.batch_readings:
                self._readings_waiting.set()
            delay = gateway.next_sample_at() - time.monotonic()
            delay = min(max(delay, MIN_TICK_S), MAX_TICK_S)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._sample_now.wait(), delay)
            self._sample_now.clear()

    async def _sessions(self, stop: asyncio.Event) -> None:
        attempt = 0
        while not stop.is_set():
            try:
                await self._session(stop)
                attempt = 0
            except aiomqtt.MqttError as exc:
                logger.info("gateway %s: broker session ended: %s", self.gateway.gateway_id, exc)
            except Exception:
                logger.exception("gateway %s: session failed", self.gateway.gateway_id)
            if stop.is_set():
                return
            delay = self._backoff.delay(attempt, self._rng)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), delay)

    async def _session(self, stop: asyncio.Event) -> None:
        gateway = self.gateway
        will = aiomqtt.Will(
            self._topic("status"), encode(gateway.offline("connection lost")), qos=1, retain=True
        )
        client = self._link.client(f"iot-gateway-{gateway.gateway_id}", will=will)
        async with client:
            self._client = client
            self._metrics.connected.inc()
            if self.sessions:
                self._metrics.reconnects.inc()
            self.sessions += 1
            try:
                await client.subscribe(self._topic("cmd"), qos=1, timeout=PUBLISH_TIMEOUT_S)
                await self.publish_status()
                tasks = [
                    asyncio.create_task(self._read(client), name=f"commands-{gateway.gateway_id}"),
                    asyncio.create_task(self._publish_batches(), name=f"batches-{gateway.gateway_id}"),
                    asyncio.create_task(self._heartbeat(), name=f"status-{gateway.gateway_id}"),
                    asyncio.create_task(stop.wait(), name=f"stop-{gateway.gateway_id}"),
                ]
                try:
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    for task in tasks:
                        task.cancel()
                    await asyncio.gather(*tasks, return_exceptions=True)
                for task in done:
                    if not task.cancelled() and task.exception() is not None:
                        raise task.exception()  # type: ignore[misc]
                if stop.is_set():
                    await self._publish(
                        "status", gateway.offline("stopped"), qos=1, retain=True, timeout_s=GOODBYE_TIMEOUT_S
                    )
            finally:
                self._client = None
                self._metrics.connected.dec()
                if stop.is_set():
                    # Leaving ``async with`` waits for the DISCONNECT to go out, by default for
                    # the client's whole timeout (10 s): a frozen broker held the exit that long.
                    client.timeout = GOODBYE_TIMEOUT_S

    async def _publish(
        self,
        kind: Kind,
        body: dict[str, Any],
        *,
        qos: int,
        retain: bool = False,
        traceparent: str = "",
        timeout_s: float = PUBLISH_TIMEOUT_S,
    ) -> None:
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected")
        properties = None
        if traceparent:
            if self._link.v5:
                properties = publish_properties(traceparent=traceparent)
            else:
                body = {**body, "traceparent": traceparent}
        await client.publish(
            self._topic(kind), encode(body), qos=qos, retain=retain, properties=properties,
            timeout=timeout_s,
        )  # fmt: skip

    async def publish_status(self) -> None:
        await self._publish("status", self.gateway.status(), qos=1, retain=True)

    async def _heartbeat(self) -> None:
        while True:
            await asyncio.sleep(self.gateway.config.status_every_s)
            await self.publish_status()

    async def _publish_batches(self) -> None:
        gateway = self.gateway
        while True:
            batch = gateway.next_batch()
            if batch is None:
                self._readings_waiting.clear()
                await self._readings_waiting.wait()
                continue
            before = (gateway.module.digest, gateway.ota.on_probation)
            outcome = await gateway.run(batch)
            if outcome is not None:
                now = time.time()
                await self._publish_telemetry(batch, now)
                span = self._telemetry.batch_span(gateway, outcome)
                await self._publish(
                    "results",
                    {"gateway_id": gateway.gateway_id, "region": gateway.region, "ts": now,
                     "batch": outcome.number, "readings": len(batch.readings),
                     "module_sha256": outcome.module.digest, "result": outcome.result},
                    qos=1, traceparent=span,
                )  # fmt: skip
                for sensor, value, count in outcome.alerts:
                    await self._publish("alerts", {
                        "gateway_id": gateway.gateway_id, "region": gateway.region, "ts": now,
                        "sensor": sensor, "value": value, "threshold": gateway.config.warning_above_c,
                        "count": count,
                        "message": f"{sensor} {value:g} above {gateway.config.warning_above_c:g}",
                    }, qos=1)  # fmt: skip
                gateway.batch_done(batch)
            if (gateway.module.digest, gateway.ota.on_probation) != before:
                await self.publish_status()  # a rollback, or an update that passed probation

    async def _publish_telemetry(self, batch: Batch, now: float) -> None:
        # In slices, so that a large batch still keeps every payload under the contract's 64 KiB.
        gateway = self.gateway
        for start in range(0, len(batch.readings), TELEMETRY_SLICE):
            readings = [r.to_json() for r in batch.readings[start : start + TELEMETRY_SLICE]]
            body = {
                "gateway_id": gateway.gateway_id,
                "region": gateway.region,
                "ts": now,
                "readings": readings,
            }
            await self._publish("telemetry", body, qos=0)

    async def _read(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            await self._command(message)

    async def _command(self, message: aiomqtt.Message) -> None:
        gateway = self.gateway
        payload = message.payload if isinstance(message.payload, bytes | bytearray) else b""
        parsed = parse_command(bytes(payload))
        try:
            body = json.loads(payload)
        except ValueError:
            body = None
        incoming = traceparent_of(message, body if isinstance(body, dict) else None)
        response_topic, correlation = response_of(message)
        with self._telemetry.command_span(gateway, parsed, incoming) as span:
            if isinstance(parsed, BadCommand):
                self._metrics.refused("bad_command", parsed.reason)
                ok, text, kind = False, parsed.reason, "malformed"
            else:
                ok, text = await self._carry_out(parsed)
                kind = parsed.kind
            span.outcome(ok=ok, message=text)
            self._metrics.commands.labels(kind, str(ok).lower()).inc()
            result = CommandResult(
                command_id=parsed.command_id, gateway_id=gateway.gateway_id, ok=ok, message=text,
                status=gateway.status(),
            )  # fmt: skip
            await self._reply(result, response_topic, correlation, span.traceparent)
        await self.publish_status()

    async def _carry_out(self, command: Command) -> tuple[bool, str]:
        if command.kind == "ping":
            return True, "pong"
        if command.kind == "set_interval":
            self.gateway.set_interval(command.interval_s)
            self._sample_now.set()
            return True, f"interval {command.interval_s:g} s"
        before = self.gateway.module.digest
        ok, text = await self.gateway.update(command.sha256)
        if self.gateway.module.digest != before:
            logger.info("gateway %s: %s", self.gateway.gateway_id, text)
        return ok, text

    async def _reply(
        self, result: CommandResult, response_topic: str, correlation: bytes, traceparent: str
    ) -> None:
        client = self._client
        if client is None:
            raise aiomqtt.MqttError("not connected")
        if self._link.v5:
            properties = publish_properties(correlation_data=correlation, traceparent=traceparent)
            target = response_topic or self._topic("cmd/result")
            await client.publish(target, result.to_payload(), qos=1, properties=properties,
                                 timeout=PUBLISH_TIMEOUT_S)  # fmt: skip
            return
        body = json.loads(result.to_payload())
        if traceparent:
            body["traceparent"] = traceparent
        await client.publish(self._topic("cmd/result"), encode(body), qos=1, timeout=PUBLISH_TIMEOUT_S)
