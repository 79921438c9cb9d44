"""--otlp-forward: everything collected reaches a second OTLP receiver, unchanged."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2

from tests.control_plane.support import control_plane_in_process


class RecordingReceiver(trace_service_pb2_grpc.TraceServiceServicer):
    """A bare OTLP receiver standing in for Jaeger/Tempo/the Collector."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []

    async def Export(  # noqa: N802
        self, request: trace_service_pb2.ExportTraceServiceRequest, context: Any
    ) -> trace_service_pb2.ExportTraceServiceResponse:
        self.requests.append(request)
        return trace_service_pb2.ExportTraceServiceResponse()


async def test_forwarded_to_second_receiver(tmp_path: Path) -> None:
    receiver = RecordingReceiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with (
            control_plane_in_process(tmp_path / "cp", otlp_forward=f"http://127.0.0.1:{port}") as live,
            grpc.aio.insecure_channel(live.address) as channel,
        ):
            stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
            span = trace_pb2.Span(
                trace_id=b"\x07" * 16, span_id=b"\x08" * 8, name="forward-me", start_time_unix_nano=5
            )
            sent = trace_service_pb2.ExportTraceServiceRequest(
                resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[span])])]
            )
            await stub.Export(sent, metadata=live.md("node"), timeout=5)
            deadline = time.monotonic() + 10
            while not any(r == sent for r in receiver.requests):
                assert time.monotonic() < deadline, receiver.requests
                await asyncio.sleep(0.05)
    finally:
        await server.stop(None)
