"""The gateway coordinator: the MQTT adapter beside the fleet (docs/iot.md is the contract).

It keeps one broker session (reconnecting with back-off; every retained status is
delivered again on subscribe, so the registry re-learns every gateway), feeds status,
results and alerts to the pure ``Registry``, and sends commands: one ``cmd`` per gateway,
then waits for each ``cmd/result`` until a deadline. Under MQTT v5 a command carries the
gateway's ``cmd/result`` topic as response topic, the command id as correlation data and
``traceparent`` as a user property; under 3.1.1 the gateway answers on the same topic and
``traceparent`` rides in the payload. The control plane publishes nothing retained and no
will, so its restarts never disturb gateways.

API for other adapters (the gRPC service, the rollout engine): ``send``, ``dispatch``,
``gateways``, ``region_health``, ``refused_by_reason``, ``connected``.
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from dataclasses import dataclass

import aiomqtt
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from control_plane.gateways.commands import (
    CommandSpec,
    GatewayResult,
    Targets,
    check_command,
    check_deadline,
    select,
)
from control_plane.gateways.errors import BrokerUnavailableError
from control_plane.gateways.registry import Gateway, RegionHealth, Registry, reason_key
from cpclient.backoff import Backoff
from iotwire.link import BrokerLink, publish_properties, response_of
from iotwire.payloads import Command, CommandResult, Refusal, parse_command_result
from iotwire.topics import Where, parse_topic, subscription, topic

logger = logging.getLogger(__name__)

LOG_EVERY_S = 60.0  # a refusal reason is logged at most this often
SWEEP_EVERY_S = 1.0
SUBSCRIBED_KINDS = ("status", "results", "alerts", "cmd/result")
_PROPAGATOR = TraceContextTextMapPropagator()
Clock = Callable[[], float]


@dataclass(frozen=True, slots=True, kw_only=True)
class Dispatch:
    """A command on its way: its id, the gateways it went to, and their results as they come."""

    command_id: str
    gateways: tuple[Gateway, ...]
    results: AsyncIterator[GatewayResult]


def current_traceparent() -> str:
    """The W3C traceparent of the current span (the incoming RPC's), empty when none."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


def _since(stamp: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(stamp))


class Coordinator:
    """One broker session and the registry it feeds. Run ``run()`` as a task."""

    def __init__(
        self,
        link: BrokerLink,
        *,
        has_module: Callable[[str], bool],
        registry: Registry | None = None,
        clock: Clock = time.time,
        backoff: Backoff | None = None,
    ) -> None:
        self._link = link
        self._has_module = has_module
        self.registry = registry or Registry()
        self._clock = clock
        self._backoff = backoff or Backoff(initial_s=0.2, maximum_s=5.0)
        self._client: aiomqtt.Client | None = None
        self._last_error = "not connected yet"
        self._pending: dict[tuple[str, str], asyncio.Future[CommandResult | str]] = {}
        self._logged: dict[str, float] = {}
        self._identifier = f"control-plane-{os.getpid()}-{secrets.token_hex(3)}"

    @property
    def connected(self) -> bool:
        return self._client is not None

    # -- the session -----------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, subscribe and read until cancelled; reconnect with back-off on loss."""
        async with asyncio.TaskGroup() as group:
            group.create_task(self._sweep_forever(), name="gateway-liveness-sweep")
            attempt = 0
            while True:
                try:
                    async with self._link.client(self._identifier) as client:
                        attempt = 0
                        await self._serve(client)
                except aiomqtt.MqttError as exc:
                    self._last_error = str(exc)
                    logger.warning("MQTT broker %s: %s; reconnecting", self._link.url, exc)
                finally:
                    self._client = None
                await asyncio.sleep(self._backoff.delay(attempt))
                attempt += 1

    async def _serve(self, client: aiomqtt.Client) -> None:
        for kind in SUBSCRIBED_KINDS:
            await client.subscribe(subscription(kind), qos=1)  # type: ignore[arg-type]
        self._client = client
        logger.info("connected to the MQTT broker %s as %s", self._link.url, self._link.username)
        async for message in client.messages:
            self._handle(message)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(SWEEP_EVERY_S)
            self._went_offline(self.registry.sweep(self._clock()))

    def _handle(self, message: aiomqtt.Message) -> None:
        name = str(message.topic)
        payload = message.payload if isinstance(message.payload, bytes) else str(message.payload).encode()
        where = parse_topic(name)
        if isinstance(where, Where) and where.kind == "cmd/result":
            self._take_result(name, where.gateway_id, payload, response_of(message)[1])
            return
        before = self.registry.get(where.gateway_id) if isinstance(where, Where) else None
        parsed = self.registry.apply(name, payload, self._clock())
        if isinstance(parsed, Refusal):
            self._log_refusal(
                name,
                reason_key(where.kind if isinstance(where, Where) else "topic", parsed.reason),
                parsed.reason,
            )
            return
        after = self.registry.get(parsed.gateway_id)
        if after is not None and not after.online and (before is None or before.online):
            self._went_offline([after])

    def _take_result(self, name: str, gateway_id: str, payload: bytes, correlation: bytes) -> None:
        result = parse_command_result(payload)
        problem = (
            result
            if isinstance(result, str)
            else f"gateway_id {result.gateway_id!r} does not match the topic"
            if result.gateway_id != gateway_id
            else "correlation data does not match 'command_id'"
            if correlation and correlation != result.command_id.encode()
            else ""
        )
        if problem or isinstance(result, str):
            self._log_refusal(name, self.registry.refuse("cmd/result", problem), problem)
            return
        waiter = self._pending.get((result.command_id, gateway_id))
        if waiter is not None and not waiter.done():
            waiter.set_result(result)
        else:
            logger.debug("late or unknown result %s from %s", result.command_id, gateway_id)

    def _log_refusal(self, name: str, key: str, reason: str) -> None:
        """Log a refusal (already counted under ``key``) at most once a minute per key."""
        now = self._clock()
        if now - self._logged.get(key, -LOG_EVERY_S) >= LOG_EVERY_S:
            self._logged[key] = now
            count = self.registry.refused_by_reason().get(key, 0)
            logger.warning("refused MQTT message on %s: %s (%d so far for %r)", name, reason, count, key)

    def _went_offline(self, gateways: Iterable[Gateway]) -> None:
        """A gateway that went offline will not answer: settle its pending commands now."""
        for gateway in gateways:
            why = f"gateway offline since {_since(gateway.offline_since)} ({gateway.offline_reason})"
            for (_, gateway_id), waiter in self._pending.items():
                if gateway_id == gateway.gateway_id and not waiter.done():
                    waiter.set_result(why)

    # -- reads -----------------------------------------------------------------------------

    def gateways(self, regions: Iterable[str] = ()) -> list[Gateway]:
        return self.registry.gateways(regions)

    def region_health(self) -> dict[str, RegionHealth]:
        """Per region: gateways, online, module errors, rollbacks, readings, modules run."""
        return self.registry.region_health()

    def refused_by_reason(self) -> dict[str, int]:
        return self.registry.refused_by_reason()

    # -- commands --------------------------------------------------------------------------

    async def send(
        self, command: CommandSpec, targets: Targets, deadline_s: float = 0.0, *, traceparent: str = ""
    ) -> list[GatewayResult]:
        """Send ``command`` to ``targets``; every gateway's result (or time-out), in registry
        order. Raises a GatewayError (nothing published) when the command or targets are bad."""
        dispatch = await self.dispatch(command, targets, deadline_s, traceparent=traceparent)
        by_id = {result.gateway_id: result async for result in dispatch.results}
        return [by_id[g.gateway_id] for g in dispatch.gateways]

    async def dispatch(
        self, command: CommandSpec, targets: Targets, deadline_s: float = 0.0, *, traceparent: str = ""
    ) -> Dispatch:
        """Check, publish to every target, and return the results as an async iterator."""
        check_command(command, has_module=self._has_module)
        deadline_s = check_deadline(deadline_s)
        chosen = tuple(select(targets, self.registry.gateways()))
        client = self._client
        if client is None:
            raise BrokerUnavailableError(url=self._link.url, reason=self._last_error)
        command_id = f"c-{secrets.token_hex(6)}"
        wire = Command(
            command_id=command_id, kind=command.kind, sha256=command.sha256, interval_s=command.interval_s
        )
        traceparent = traceparent or current_traceparent()
        loop = asyncio.get_running_loop()
        waiters = {g.gateway_id: loop.create_future() for g in chosen if g.online}
        for gateway_id, waiter in waiters.items():
            self._pending[(command_id, gateway_id)] = waiter
        started = loop.time()
        try:
            await self._publish_all(client, wire, [g for g in chosen if g.online], traceparent)
        except BaseException:
            self._forget(command_id, waiters)
            raise
        results = self._results(command_id, chosen, waiters, started, deadline_s)
        return Dispatch(command_id=command_id, gateways=chosen, results=results)

    async def _publish_all(
        self, client: aiomqtt.Client, command: Command, gateways: Sequence[Gateway], traceparent: str
    ) -> None:
        v5 = self._link.v5
        # Under 3.1.1 there are no properties: the trace context travels in the payload.
        payload = command.to_payload(traceparent="" if v5 else traceparent)

        async def one(gateway: Gateway) -> None:
            properties = (
                publish_properties(
                    response_topic=topic(gateway.region, gateway.gateway_id, "cmd/result"),
                    correlation_data=command.command_id.encode(),
                    traceparent=traceparent,
                )
                if v5
                else None
            )
            await client.publish(
                topic(gateway.region, gateway.gateway_id, "cmd"), payload, qos=1, properties=properties
            )

        try:
            async with asyncio.timeout(10):
                await asyncio.gather(*(one(g) for g in gateways))
        except (aiomqtt.MqttError, TimeoutError) as exc:
            raise BrokerUnavailableError(url=self._link.url, reason=f"publishing failed: {exc}") from exc

    async def _results(
        self,
        command_id: str,
        chosen: Sequence[Gateway],
        waiters: dict[str, asyncio.Future[CommandResult | str]],
        started: float,
        deadline_s: float,
    ) -> AsyncIterator[GatewayResult]:
        loop = asyncio.get_running_loop()
        try:
            for gateway in chosen:
                if gateway.gateway_id not in waiters:
                    yield _offline(gateway)
            by_future = {waiter: gid for gid, waiter in waiters.items()}
            regions = {g.gateway_id: g.region for g in chosen}
            remaining = set(waiters.values())
            while remaining:
                timeout = max(0.0, started + deadline_s - loop.time())
                done, remaining = await asyncio.wait(
                    remaining, timeout=timeout, return_when=asyncio.FIRST_COMPLETED
                )
                if not done:
                    break
                for waiter in done:
                    gid = by_future[waiter]
                    yield _answered(gid, regions[gid], waiter.result(), loop.time() - started)
            for waiter in remaining:
                gid = by_future[waiter]
                yield GatewayResult(
                    gateway_id=gid,
                    region=regions[gid],
                    ok=False,
                    timed_out=True,
                    message=f"no result within {deadline_s:g}s",
                    elapsed_s=deadline_s,
                )
        finally:
            self._forget(command_id, waiters)

    def _forget(self, command_id: str, waiters: dict[str, asyncio.Future[CommandResult | str]]) -> None:
        for gateway_id, waiter in waiters.items():
            self._pending.pop((command_id, gateway_id), None)
            if not waiter.done():
                waiter.cancel()


def _offline(gateway: Gateway) -> GatewayResult:
    since = f" since {_since(gateway.offline_since)}" if gateway.offline_since else ""
    reason = f" ({gateway.offline_reason})" if gateway.offline_reason else ""
    return GatewayResult(
        gateway_id=gateway.gateway_id,
        region=gateway.region,
        ok=False,
        timed_out=True,
        message=f"gateway offline{since}{reason}; not sent",
    )


def _answered(gateway_id: str, region: str, answer: CommandResult | str, elapsed_s: float) -> GatewayResult:
    if isinstance(answer, str):
        return GatewayResult(
            gateway_id=gateway_id,
            region=region,
            ok=False,
            timed_out=True,
            message=answer,
            elapsed_s=elapsed_s,
        )
    return GatewayResult(
        gateway_id=gateway_id,
        region=region,
        ok=answer.ok,
        message=answer.message,
        status=answer.status,
        elapsed_s=elapsed_s,
    )
