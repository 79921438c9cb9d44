"""The control plane's tracing: an SDK ``TracerProvider`` (resource ``service.name =
control-plane``) whose spans go straight into its own collector — or to
``OTEL_EXPORTER_OTLP_ENDPOINT`` when set — and a server interceptor that gives every RPC a
SERVER span continuing the caller's ``traceparent`` metadata.

OTLP ``Export`` itself and health checks are not traced: a span per received batch
would feed the store with its own ingestion, and probes are noise. A method's tracing
wrapper is built once (``HandlerCache``); each call reads its own ``traceparent`` from its
context.
"""

from __future__ import annotations

import asyncio
import dataclasses
import inspect
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any

import grpc
from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.trace import SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from control_plane.grpc_handlers import Handler, HandlerCache, outcome_code, rewrap
from control_plane.traces.collector import Collector, LocalSpanExporter
from tracing.exporter import EXPORT_METHOD
from tracing.sdk import otlp_exporter, sdk_provider
from tracing.settings import export_settings, resource_attributes

SERVICE_NAME = "control-plane"
SHUTDOWN_EXPORT_S = 2.0
# Not traced: span export itself, health and reflection; a node's session stream, which lives
# for hours (one span over it says nothing, and entering its context for every message cost
# ~10% of the control plane's CPU during a deploy to 10,000 nodes); module downloads, the
# fleet's bulk transfer (10,000 at once in that deploy), counted in /metrics.
UNTRACED_PREFIXES = (
    EXPORT_METHOD,
    "/grpc.health.v1.Health/",
    "/grpc.reflection.",
    "/edgecdn.v1.NodeSessionService/Connect",
    "/edgecdn.v1.ModuleService/DownloadModule",
)
_PROPAGATOR = TraceContextTextMapPropagator()


def control_plane_provider(collector: Collector, *, sample_ratio: float, address: str) -> TracerProvider:
    """The process's provider; the caller shuts it down (flushing) before the loop ends."""
    environ = os.environ
    settings = export_settings(environ, control_plane=None, token=None)
    resource = resource_attributes(
        environ,
        {
            "service.name": SERVICE_NAME,
            "service.instance.id": f"{socket.gethostname()}:{address}",
            "service.namespace": "edgecdn",
        },
    )
    exporter = (
        # A short deadline: shutdown flushes through this exporter and must not wait long.
        otlp_exporter(dataclasses.replace(settings, timeout_s=min(settings.timeout_s, SHUTDOWN_EXPORT_S)))
        if settings is not None
        else LocalSpanExporter(collector, asyncio.get_running_loop())
    )
    return sdk_provider(resource, sample_ratio=sample_ratio, exporter=exporter)


def _metadata(context: Any) -> dict[str, str]:
    """The call's trace context headers (``traceparent``, ``tracestate``), if it sent any."""
    carrier = {}
    for key, value in context.invocation_metadata() or ():
        if key in {"traceparent", "tracestate"}:
            carrier[key] = value if isinstance(value, str) else value.decode()
    return carrier


class TracingInterceptor(grpc.aio.ServerInterceptor):
    """A SERVER span per RPC (``rpc.system=grpc``), status from the call's outcome."""

    def __init__(self, tracer: Tracer) -> None:
        self._tracer = tracer
        self._handlers = HandlerCache()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        method = handler_call_details.method
        if handler is None or method.startswith(UNTRACED_PREFIXES):
            return handler
        return self._handlers.wrapped(method, handler, lambda found: _traced(found, self._tracer, method))


def _traced(handler: Handler, tracer: Tracer, method: str) -> Handler:
    service, _, name = method.strip("/").partition("/")
    attributes = {"rpc.system": "grpc", "rpc.service": service, "rpc.method": name}

    def span(context: Any) -> trace.Span:
        carrier = _metadata(context)
        parent = _PROPAGATOR.extract(carrier) if carrier else None
        return tracer.start_span(
            method.strip("/"), context=parent, kind=SpanKind.SERVER, attributes=attributes
        )

    def finish(span_: trace.Span, context: Any, exc: BaseException | None) -> None:
        code = outcome_code(context, exc)
        span_.set_attribute("rpc.grpc.status_code", code.value[0])
        if code != grpc.StatusCode.OK:
            span_.set_status(Status(StatusCode.ERROR, code.name))
        span_.end()

    def wrap(behavior: Any) -> Any:
        if inspect.isasyncgenfunction(behavior):

            async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
                current = span(context)
                error: BaseException | None = None
                try:
                    with trace.use_span(current, end_on_exit=False):
                        async with aclosing(behavior(request, context)) as responses:
                            async for response in responses:
                                yield response
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    finish(current, context, error)

            return streaming

        async def single(request: Any, context: Any) -> Any:
            current = span(context)
            error: BaseException | None = None
            try:
                with trace.use_span(current, end_on_exit=False, record_exception=False):
                    return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                finish(current, context, error)

        return single

    return rewrap(handler, lambda behavior, kind: wrap(behavior))
