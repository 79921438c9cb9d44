"""The lean batch exporter against a real OTLP receiver, and against nobody."""

from __future__ import annotations

import asyncio
import socket
import time
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from tracing.exporter import OtlpBatchExporter
from tracing.lean import LeanTracer
from tracing.sampling import ParentBasedRatioSampler
from tracing.settings import ExportSettings
from tracing.wire import SpanKind, SpanName, encode_resource, encode_scope


class Receiver(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self) -> None:
        self.requests: list[tuple[trace_service_pb2.ExportTraceServiceRequest, dict[str, Any]]] = []

    async def Export(  # noqa: N802
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append((request, dict(context.invocation_metadata())))
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_batches_reach_the_receiver_with_headers() -> None:
    receiver = Receiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        settings = ExportSettings(
            target=f"127.0.0.1:{port}", headers=(("authorization", "Bearer t0ken-t0ken"),), batch_size=10
        )
        async with OtlpBatchExporter(
            settings, resource=encode_resource({"service.name": "x"}), scope=encode_scope("s")
        ) as exporter:
            tracer = LeanTracer(sampler=ParentBasedRatioSampler(ratio=1.0), sink=exporter)
            for _ in range(25):
                trace = tracer.begin(None)
                assert trace is not None
                trace.emit(SpanName("child", SpanKind.INTERNAL), trace.start_ns, trace.start_ns + 1)
                trace.finish(SpanName("GET", SpanKind.SERVER))
        spans = [
            s
            for request, _ in receiver.requests
            for r in request.resource_spans
            for ss in r.scope_spans
            for s in ss.spans
        ]
        assert len(spans) == 50
        assert exporter.exported == 50
        assert all(md["authorization"] == "Bearer t0ken-t0ken" for _, md in receiver.requests)
        servers = {s.span_id for s in spans if s.kind == s.SPAN_KIND_SERVER}
        assert all(s.parent_span_id in servers for s in spans if s.kind == s.SPAN_KIND_INTERNAL)
    finally:
        await server.stop(None)


async def test_an_absent_collector_costs_bounded_memory_and_a_prompt_close() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nobody listens there
    settings = ExportSettings(target=f"127.0.0.1:{port}", batch_size=8, max_queue_spans=64, interval_s=0.05)
    exporter = OtlpBatchExporter(settings, resource=b"", scope=b"")
    async with exporter:
        for _ in range(1000):
            exporter.add(b"\x0a\x10" + b"\x01" * 16)
        await asyncio.sleep(0.5)
        started = time.monotonic()
    assert time.monotonic() - started < 2.5
    assert exporter.dropped >= 1000 - 64
    assert exporter.exported == 0
