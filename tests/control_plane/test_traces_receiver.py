"""The OTLP receiver with the real OpenTelemetry SDK exporter, queries, and bad payloads."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import grpc
import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.proto.trace.v1 import trace_pb2
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from opentelemetry.trace import SpanKind, Status, StatusCode

from protos.edgecdn.v1 import traces_pb2, traces_pb2_grpc
from tests.control_plane.support import LiveControlPlane, control_plane_in_process


def sdk_provider(live: LiveControlPlane, role: str = "node", **resource: str) -> TracerProvider:
    provider = TracerProvider(resource=Resource.create({"service.name": "test-svc", **resource}))
    exporter = OTLPSpanExporter(
        endpoint=live.address, insecure=True, headers={"authorization": f"Bearer {live.tokens[role]}"}
    )
    provider.add_span_processor(BatchSpanProcessor(exporter))
    return provider


async def wait_for_traces(
    stub: Any,
    md: tuple[tuple[str, str], ...],
    count: int,
    **filters: Any,
) -> list[traces_pb2.TraceSummary]:
    deadline = time.monotonic() + 10
    while True:
        found = await stub.ListTraces(traces_pb2.ListTracesRequest(**filters), metadata=md, timeout=5)
        if len(found.traces) >= count or time.monotonic() > deadline:
            return list(found.traces)
        await asyncio.sleep(0.05)


async def test_sdk_exporter_spans_are_stored_and_queryable(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    provider = sdk_provider(live, **{"edgecdn.region": "eu-west-1"})
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER) as root:
        root.set_attribute("http.route", "/hello")
        root.set_attribute("edgecdn.app.version", "1.0.0")
        with tracer.start_as_current_span("wasm") as child:
            child.set_status(Status(StatusCode.ERROR, "trap"))
    trace_id = format(root.get_span_context().trace_id, "032x")
    await asyncio.to_thread(provider.shutdown)

    stub = traces_pb2_grpc.TraceQueryServiceStub(channel)
    viewer = live.md("viewer")
    [summary] = await wait_for_traces(stub, viewer, 1, service="test-svc")
    assert summary.trace_id == trace_id
    assert summary.root_service == "test-svc"
    assert summary.root_name == "GET /hello"
    assert summary.status == traces_pb2.SPAN_STATUS_ERROR
    assert summary.span_count == 2
    assert summary.region == "eu-west-1"
    assert summary.app_version == "1.0.0"

    trace = await stub.GetTrace(traces_pb2.GetTraceRequest(trace_id=trace_id), metadata=viewer, timeout=5)
    root_span, wasm_span = trace.spans
    assert root_span.parent_span_id == ""
    assert wasm_span.parent_span_id == root_span.span_id
    assert wasm_span.status == traces_pb2.SPAN_STATUS_ERROR
    assert wasm_span.status_message == "trap"
    assert root_span.kind == "SERVER"
    assert root_span.attributes["http.route"] == "/hello"
    assert root_span.attributes["service.name"] == "test-svc"

    assert not await wait_for_traces(stub, viewer, 1, region="us-east-1")
    assert len(await wait_for_traces(stub, viewer, 1, errors_only=True)) == 1


async def test_export_needs_node_or_operator_role(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
    request = trace_service_pb2.ExportTraceServiceRequest()
    with pytest.raises(grpc.aio.AioRpcError) as denied:
        await stub.Export(request, metadata=live.md("viewer"), timeout=5)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with pytest.raises(grpc.aio.AioRpcError) as anonymous:
        await stub.Export(request, timeout=5)
    assert anonymous.value.code() == grpc.StatusCode.UNAUTHENTICATED
    await stub.Export(request, metadata=live.md("operator"), timeout=5)
    await stub.Export(request, metadata=live.md("node"), timeout=5)


async def test_garbage_payloads_are_rejected_and_the_server_keeps_serving(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    raw: grpc.aio.UnaryUnaryMultiCallable[bytes, trace_service_pb2.ExportTraceServiceResponse]
    raw = channel.unary_unary(
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
        request_serializer=None,
        response_deserializer=trace_service_pb2.ExportTraceServiceResponse.FromString,
    )
    with pytest.raises(grpc.aio.AioRpcError) as garbage:
        await raw(b"\xff\xff\xff\xffnot protobuf", metadata=live.md("node"), timeout=5)
    assert garbage.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "ExportTraceServiceRequest" in (garbage.value.details() or "")

    def span(trace_id: bytes, name: str) -> trace_pb2.Span:
        return trace_pb2.Span(trace_id=trace_id, span_id=b"\x01" * 8, name=name, start_time_unix_nano=1)

    stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]

    def request(*spans: trace_pb2.Span) -> trace_service_pb2.ExportTraceServiceRequest:
        return trace_service_pb2.ExportTraceServiceRequest(
            resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=spans)])]
        )

    with pytest.raises(grpc.aio.AioRpcError) as all_bad:
        await stub.Export(request(span(b"short", "bad")), metadata=live.md("node"), timeout=5)
    assert all_bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "trace_id must be 16 bytes" in (all_bad.value.details() or "")

    partial = await stub.Export(
        request(span(b"short", "bad"), span(b"\x02" * 16, "good")), metadata=live.md("node"), timeout=5
    )
    assert partial.partial_success.rejected_spans == 1
    assert "bad" in partial.partial_success.error_message

    query = traces_pb2_grpc.TraceQueryServiceStub(channel)
    found = await query.GetTrace(
        traces_pb2.GetTraceRequest(trace_id=("02" * 16)), metadata=live.md("viewer"), timeout=5
    )
    assert [s.name for s in found.spans] == ["good"]


async def test_query_errors_are_clear(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    query = traces_pb2_grpc.TraceQueryServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as missing:
        await query.GetTrace(
            traces_pb2.GetTraceRequest(trace_id="ab" * 16), metadata=live.md("viewer"), timeout=5
        )
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.aio.AioRpcError) as malformed:
        await query.GetTrace(
            traces_pb2.GetTraceRequest(trace_id="xyz"), metadata=live.md("viewer"), timeout=5
        )
    assert malformed.value.code() == grpc.StatusCode.INVALID_ARGUMENT


async def test_control_plane_rpcs_are_traced(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    query = traces_pb2_grpc.TraceQueryServiceStub(channel)
    parent = "00-" + "ab" * 16 + "-" + "cd" * 8 + "-01"
    md = (*live.md("viewer"), ("traceparent", parent))
    await query.ListTraces(traces_pb2.ListTracesRequest(), metadata=md, timeout=5)
    deadline = time.monotonic() + 10
    while True:
        try:
            trace = await query.GetTrace(
                traces_pb2.GetTraceRequest(trace_id="ab" * 16), metadata=live.md("viewer"), timeout=5
            )
            break
        except grpc.aio.AioRpcError:
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
    [span] = trace.spans
    assert span.service == "control-plane"
    assert span.name == "edgecdn.v1.TraceQueryService/ListTraces"
    assert span.parent_span_id == "cd" * 8
    assert span.kind == "SERVER"
    assert span.attributes["rpc.grpc.status_code"] == "0"


async def test_each_call_of_a_method_continues_its_own_trace(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    """The tracing wrapper of a method is built once; each call still reads its own traceparent."""
    query = traces_pb2_grpc.TraceQueryServiceStub(channel)
    parents = {"a1" * 16: "b1" * 8, "a2" * 16: "b2" * 8}
    for trace_id, span_id in parents.items():
        md = (*live.md("viewer"), ("traceparent", f"00-{trace_id}-{span_id}-01"))
        await query.ListTraces(traces_pb2.ListTracesRequest(), metadata=md, timeout=5)
    for trace_id, span_id in parents.items():
        deadline = time.monotonic() + 10
        while True:
            try:
                trace = await query.GetTrace(
                    traces_pb2.GetTraceRequest(trace_id=trace_id), metadata=live.md("viewer"), timeout=5
                )
                break
            except grpc.aio.AioRpcError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        [span] = trace.spans
        assert (span.name, span.parent_span_id) == ("edgecdn.v1.TraceQueryService/ListTraces", span_id)


async def test_store_eviction_keeps_the_newest(tmp_path: Path) -> None:
    async with (
        control_plane_in_process(tmp_path / "cp", trace_max_spans=5) as live,
        grpc.aio.insecure_channel(live.address) as channel,
    ):
        stub = trace_service_pb2_grpc.TraceServiceStub(channel)  # type: ignore[no-untyped-call]
        for n in range(1, 9):
            span = trace_pb2.Span(
                trace_id=n.to_bytes(16, "big"), span_id=b"\x01" * 8, name=f"t{n}", start_time_unix_nano=n
            )
            await stub.Export(
                trace_service_pb2.ExportTraceServiceRequest(
                    resource_spans=[trace_pb2.ResourceSpans(scope_spans=[trace_pb2.ScopeSpans(spans=[span])])]
                ),
                metadata=live.md("node"),
                timeout=5,
            )
        query = traces_pb2_grpc.TraceQueryServiceStub(channel)
        found = await query.ListTraces(
            traces_pb2.ListTracesRequest(limit=100, service="unknown_service"),
            metadata=live.md("viewer"),
            timeout=5,
        )
        assert [t.root_name for t in found.traces] == ["t8", "t7", "t6", "t5", "t4"]


async def run_edgectl(live: LiveControlPlane, *args: str) -> tuple[int, str]:
    flags = ("--server", live.address, "--token", live.tokens["viewer"])
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control_plane.edgectl", *flags, *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
        env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    output, _ = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode or 0, output.decode()


async def test_edgectl_traces_and_stats(live: LiveControlPlane) -> None:
    provider = sdk_provider(live, **{"edgecdn.region": "eu-west-1"})
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("GET /hello", kind=SpanKind.SERVER) as root:
        for key, value in (
            ("http.route", "/hello"),
            ("edgecdn.app.name", "app"),
            ("edgecdn.app.version", "1.0"),
        ):
            root.set_attribute(key, value)
        root.set_attribute("http.response.status_code", 200)
        with tracer.start_as_current_span("wasm"):
            pass
    await asyncio.to_thread(provider.shutdown)
    trace_id = format(root.get_span_context().trace_id, "032x")

    code, out = await run_edgectl(
        live, "traces", "list", "--service", "test-svc", "--since", "5m", "-o", "json"
    )
    assert code == 0, out
    [listed] = json.loads(out)
    assert listed["trace_id"] == trace_id
    assert listed["root_service"] == "test-svc"
    assert listed["status"] == "ok"
    assert listed["duration_ms"] >= 0

    code, out = await run_edgectl(live, "traces", "show", trace_id, "-o", "json")
    assert code == 0, out
    spans = json.loads(out)
    assert [s["name"] for s in spans] == ["GET /hello", "wasm"]
    assert spans[1]["parent_span_id"] == spans[0]["span_id"]
    assert {"trace_id", "span_id", "parent_span_id", "service", "name", "duration_ms", "status"} <= spans[
        0
    ].keys()

    code, out = await run_edgectl(live, "traces", "show", trace_id)
    assert code == 0, out
    assert "GET /hello" in out
    assert "  wasm" in out
    assert "█" in out

    code, out = await run_edgectl(live, "stats", "--window", "1m", "-o", "json")
    assert code == 0, out
    [row] = json.loads(out)
    assert (row["region"], row["app_version"], row["requests"], row["errors"]) == ("eu-west-1", "1.0", 1, 0)
    assert row["p50_ms"] <= row["p95_ms"] <= row["p99_ms"]

    code, out = await run_edgectl(live, "stats")
    assert code == 0, out
    assert "eu-west-1" in out

    code, out = await run_edgectl(live, "traces", "list", "--since", "soon")
    assert code == 2
    assert "edgectl: --since" in out
    code, out = await run_edgectl(live, "traces", "show", "00" * 16)
    assert code == 1
    assert "not found" in out
