"""The edge node's IoT follower: subscribes to its region's gateway status, results and
alerts on the world's broker (as the broker user ``control-plane``), keeps them in a
``RegionGateways`` view (edge_node.iot_view), and answers ``GET /_edge/iot`` from it.

A thin adapter: aiomqtt in, the pure view in the middle, an admin answer out. Malformed
messages are refused, never fatal: each is counted in ``/metrics`` by reason and logged at
most once a minute per reason. When the broker goes away the follower reconnects with
back-off (cpclient.Backoff) and re-learns every gateway's presence from the retained
status messages the broker replays on subscribe; results and alerts already seen are kept.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import time
from collections.abc import Callable
from typing import Any, Literal

import aiomqtt
from prometheus_client import CollectorRegistry, Counter, Gauge

from cpclient import Backoff
from edge_node.admin import AdminAnswer
from edge_node.geo_headers import NodeIdentity
from edge_node.iot_view import RegionGateways, refusal_label
from iotwire.link import BrokerLink
from iotwire.payloads import Refusal, parse_message
from iotwire.topics import Kind, subscription

logger = logging.getLogger(__name__)

FOLLOWED: tuple[Kind, ...] = ("status", "results", "alerts")
LOG_EVERY_S = 60.0
CONNECT_TIMEOUT_S = 5.0
BrokerState = Literal["connected", "reconnecting"]


class IotMetrics:
    """The follower's Prometheus families, in the node's own registry."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.messages = Counter(
            "edge_iot_messages", "Gateway messages taken into the region view, by kind", ["kind"],
            registry=registry,
        )  # fmt: skip
        self.refused = Counter(
            "edge_iot_messages_refused", "Gateway messages refused, by reason", ["reason"], registry=registry
        )
        self.connected = Gauge(
            "edge_iot_broker_connected", "1 while subscribed to the MQTT broker", registry=registry
        )
        self.connects = Counter(
            "edge_iot_broker_connects", "Successful connections to the MQTT broker", registry=registry
        )
        self.gateways = Gauge(
            "edge_iot_gateways", "Gateways of the region known to this node", registry=registry
        )


class IotFollower:
    """Follows the region's gateways on the broker; ``run`` until stopped, ``answer`` any time."""

    def __init__(
        self,
        *,
        link: BrokerLink,
        node: NodeIdentity,
        registry: CollectorRegistry,
        backoff: Backoff,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._link = link
        self._node = node
        self._backoff = backoff
        self._clock = clock
        self._metrics = IotMetrics(registry)
        self._last_logged: dict[str, float] = {}
        self.view = RegionGateways(node.region)
        self.broker: BrokerState = "reconnecting"

    def answer(self) -> AdminAnswer:
        """``GET /_edge/iot``: the region's gateways as this node knows them."""
        document: dict[str, Any] = {
            "region": self._node.region,
            "node_id": self._node.node_id,
            "broker": self.broker,
        }
        document.update(self.view.document())
        return AdminAnswer.json(document)

    def take(self, topic: str, payload: bytes) -> None:
        """One delivered message: into the view, or refused and counted (never raises)."""
        parsed = parse_message(topic, payload)
        if isinstance(parsed, Refusal):
            self._refuse(refusal_label(parsed.reason), f"{parsed.topic}: {parsed.reason}")
            return
        problem = self.view.apply(parsed)
        if problem:
            self._refuse(problem, f"{topic}: {problem}")
            return
        self._metrics.messages.labels(parsed.kind).inc()
        self._metrics.gateways.set(len(self.view))

    def _refuse(self, label: str, detail: str) -> None:
        self._metrics.refused.labels(label).inc()
        now = self._clock()
        last = self._last_logged.get(label)
        if last is None or now - last >= LOG_EVERY_S:
            self._last_logged[label] = now
            logger.warning(
                "refused a gateway message (%s): %s; further ones logged after a minute", label, detail
            )

    async def run(self) -> None:
        """Subscribe, follow, and on any broker trouble reconnect with back-off; ends only
        when cancelled (the node's lifecycle cancels it on the way down)."""
        failures = 0
        while True:
            try:
                await self._follow_once()
            except (aiomqtt.MqttError, OSError) as exc:
                logger.warning("MQTT broker %s: %s; reconnecting", self._link.url, exc)
            except Exception:  # a bug here must not end the node: log it, start afresh
                logger.exception("IoT follower failed; reconnecting")
            # A session that got as far as subscribing resets the back-off: the broker was
            # fine a moment ago, so the first retry is quick.
            failures = 0 if self.broker == "connected" else failures + 1
            self._disconnected()
            await asyncio.sleep(self._backoff.delay(failures))

    async def _follow_once(self) -> None:
        identifier = f"edge-{self._node.node_id}-{secrets.token_hex(4)}"
        async with self._link.client(identifier, timeout_s=CONNECT_TIMEOUT_S) as client:
            for kind in FOLLOWED:
                await client.subscribe(subscription(kind, region=self._node.region), qos=1)
            self.broker = "connected"
            self._metrics.connected.set(1)
            self._metrics.connects.inc()
            logger.info("following region %s's gateways on %s", self._node.region, self._link.url)
            async for message in client.messages:
                self.take(str(message.topic), bytes(message.payload))

    def _disconnected(self) -> None:
        self.broker = "reconnecting"
        self._metrics.connected.set(0)


def no_broker_answer() -> AdminAnswer:
    """``GET /_edge/iot`` on a node started without ``--mqtt``."""
    return AdminAnswer.json(
        {
            "error": "no MQTT broker is configured on this edge node",
            "hint": "start it with --mqtt mqtt://HOST:PORT --mqtt-user control-plane "
            "(password in EDGE_NODE_MQTT_PASSWORD)",
        },
        status=503,
    )
