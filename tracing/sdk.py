"""The OpenTelemetry SDK set-up for code off the hot path (the control plane's RPCs, agents):
a ``TracerProvider`` with the process's ``Resource``, a parent-based ratio sampler and a
``BatchSpanProcessor`` over either the standard OTLP/gRPC exporter or an exporter the
process supplies (the control plane stores its own spans without a network hop).
"""

from __future__ import annotations

from collections.abc import Mapping

from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.sdk.trace.sampling import ParentBased, TraceIdRatioBased

from tracing.exporter import export_credentials
from tracing.settings import ExportSettings
from tracing.wire import AttributeValue


def otlp_exporter(settings: ExportSettings) -> OTLPSpanExporter:
    credentials = export_credentials(settings) if settings.tls else None
    return OTLPSpanExporter(
        endpoint=settings.target,
        insecure=not settings.tls,
        credentials=credentials,
        headers=dict(settings.headers),
        timeout=settings.timeout_s,
    )


def sdk_provider(
    resource: Mapping[str, AttributeValue], *, sample_ratio: float, exporter: SpanExporter
) -> TracerProvider:
    """A provider exporting through ``exporter``; call ``shutdown()`` on the way out (it flushes)."""
    provider = TracerProvider(
        resource=Resource.create(dict(resource)), sampler=ParentBased(TraceIdRatioBased(sample_ratio))
    )
    provider.add_span_processor(BatchSpanProcessor(exporter, schedule_delay_millis=1000))
    return provider
