"""The process's Prometheus figures, summed over its gateways, and the ``/metrics`` endpoint.

Refusals of bad input (malformed commands, modules that are not wasm, wrong digests, ...)
are counted by reason and logged at most once a minute per reason, so a flood of bad
commands cannot flood the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Gauge, generate_latest

logger = logging.getLogger(__name__)
LOG_EVERY_S = 60.0


class GatewayMetrics:
    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.readings = Counter("iot_gateway_readings", "Readings taken", registry=r)
        self.readings_dropped = Counter(
            "iot_gateway_readings_dropped", "Readings dropped from a full buffer while the broker was away",
            registry=r,
        )  # fmt: skip
        self.batches = Counter(
            "iot_gateway_batches", "Batches run through the module and published", registry=r
        )
        self.alerts = Counter("iot_gateway_alerts", "Alerts published", registry=r)
        self.module_errors = Counter(
            "iot_gateway_module_errors", "Batches the module failed, by reason", ["reason"], registry=r
        )
        self.rollbacks = Counter(
            "iot_gateway_rollbacks", "Automatic rollbacks to the last good module", registry=r
        )
        self.commands = Counter(
            "iot_gateway_commands", "Commands answered, by kind and outcome", ["kind", "ok"], registry=r
        )
        self.refusals = Counter(
            "iot_gateway_refusals", "Bad input refused, by reason", ["reason"], registry=r
        )
        self.reconnects = Counter(
            "iot_gateway_reconnects", "MQTT sessions opened after the first", registry=r
        )
        self.connected = Gauge("iot_gateway_connected", "Gateways with an MQTT session now", registry=r)
        self.gateways = Gauge("iot_gateway_gateways", "Gateways simulated by this process", registry=r)
        self.downloads = Counter("iot_gateway_module_downloads", "Modules downloaded from the control plane",
                                 registry=r)  # fmt: skip
        self._clock = clock
        self._logged: dict[str, float] = {}

    def refused(self, reason: str, detail: str) -> None:
        """Count a refusal; log it unless the same reason was logged within the last minute."""
        self.refusals.labels(reason).inc()
        now = self._clock()
        last = self._logged.get(reason)
        if last is None or now - last >= LOG_EVERY_S:
            self._logged[reason] = now
            logger.warning("refused (%s): %s (logged at most once a minute per reason)", reason, detail)

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


def metrics_app(metrics: GatewayMetrics) -> web.Application:
    async def serve_metrics(_request: web.Request) -> web.Response:
        response = web.Response(body=metrics.exposition())
        response.content_type = CONTENT_TYPE_LATEST.split(";")[0]
        return response

    async def healthz(_request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    app = web.Application()
    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/healthz", healthz)
    return app
