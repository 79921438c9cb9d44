"""The gateway's tracing: a SERVER span per command (continuing the ``cmd``'s ``traceparent``,
so edgectl -> control plane -> gateway -> result is one trace) and a PRODUCER span per
published batch; the ``traceparent`` of these spans rides on ``cmd/result`` and ``results``.

Built on the lean tracer of ``tracing``; spans go over OTLP/gRPC to the control plane (or
``OTEL_EXPORTER_OTLP_ENDPOINT``). Without a collector there are no spans, but a command's
incoming ``traceparent`` is still passed on to its result.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import AsyncExitStack, contextmanager
from typing import TYPE_CHECKING

from iotwire.payloads import BadCommand, Command
from runtime.tls import ClientTlsFiles
from tracing.lean import LeanTracer, RequestTrace, start_lean_tracer
from tracing.settings import edgecdn_version, resource_attributes
from tracing.wire import AttributeKey, SpanKind, SpanName, StatusCode, status_field

if TYPE_CHECKING:
    from iot_gateway.gateway import BatchOutcome, Gateway

SERVICE_NAME = "iot-gateway"
SCOPE = "edgecdn.iot_gateway"
K_GATEWAY = AttributeKey("edgecdn.gateway.id")
K_REGION = AttributeKey("edgecdn.region")
K_COMMAND = AttributeKey("edgecdn.command.kind")
K_COMMAND_ID = AttributeKey("edgecdn.command.id")
K_MODULE = AttributeKey("edgecdn.module.sha256")
K_BATCH = AttributeKey("edgecdn.batch")
COMMAND_SPAN = SpanName("gateway command", SpanKind.SERVER)
BATCH_SPAN = SpanName("gateway batch", SpanKind.PRODUCER)


class CommandSpan:
    """The span of one command while it is handled."""

    def __init__(self, trace: RequestTrace | None, incoming: str) -> None:
        self.trace = trace
        self.traceparent = trace.traceparent(trace.span_id) if trace is not None else incoming
        self.ok = True
        self.message = ""

    def outcome(self, *, ok: bool, message: str) -> None:
        self.ok, self.message = ok, message


class GatewayTelemetry:
    def __init__(self, tracer: LeanTracer | None) -> None:
        self.tracer = tracer

    @contextmanager
    def command_span(
        self, gateway: Gateway, command: Command | BadCommand, incoming: str
    ) -> Iterator[CommandSpan]:
        trace = self.tracer.begin(incoming or None) if self.tracer is not None else None
        span = CommandSpan(trace, incoming)
        try:
            yield span
        finally:
            if trace is not None:
                kind = command.kind if isinstance(command, Command) else "malformed"
                attributes = (
                    K_GATEWAY.str(gateway.gateway_id) + K_REGION.str(gateway.region) + K_COMMAND.str(kind)
                    + K_COMMAND_ID.str(command.command_id) + K_MODULE.str(gateway.module.digest)
                )  # fmt: skip
                status = b"" if span.ok else status_field(StatusCode.ERROR, span.message[:200])
                trace.finish(COMMAND_SPAN, attributes, status)

    def batch_span(self, gateway: Gateway, outcome: BatchOutcome) -> str:
        """Record a batch's span (when sampled); the traceparent its ``results`` carry."""
        if self.tracer is None:
            return ""
        trace = self.tracer.begin(None)
        if trace is None:
            return ""
        attributes = (
            K_GATEWAY.str(gateway.gateway_id) + K_REGION.str(gateway.region)
            + K_MODULE.str(outcome.module.digest) + K_BATCH.int(outcome.number)
        )  # fmt: skip
        trace.finish(BATCH_SPAN, attributes)
        return trace.traceparent(trace.span_id)


async def start_telemetry(
    stack: AsyncExitStack,
    *,
    instance: str,
    region: str,
    control_plane: str | None,
    token: str,
    sample_ratio: float,
    control_plane_tls: ClientTlsFiles | None = None,
) -> GatewayTelemetry:
    resource = resource_attributes(
        os.environ,
        {
            "service.name": SERVICE_NAME,
            "service.namespace": "edgecdn",
            "service.version": edgecdn_version(),
            "service.instance.id": instance,
            "edgecdn.region": region,
        },
    )
    tracer = await start_lean_tracer(
        stack,
        resource=resource,
        scope=SCOPE,
        control_plane=control_plane,
        token=token,
        sample_ratio=sample_ratio,
        control_plane_tls=control_plane_tls,
    )
    return GatewayTelemetry(tracer)
