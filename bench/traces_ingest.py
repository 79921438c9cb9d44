"""Control-plane span ingestion: raw OTLP ``TraceService/Export`` calls against a real
control-plane process, as fast as it answers.

Requests are realistic edge-node batches (512 spans: per request a SERVER span with the
app, route and status attributes and four stage spans, encoded with ``tracing.wire``),
prepared up front with distinct trace ids so the store indexes and evicts as in a
running world; a few calls are kept in flight. Reported: spans/s accepted, and spans per
CPU-second of the control-plane process (user + system, all its threads) — the figure
for "on one core". Target (issue 7): >= 20,000 spans/s.

    .venv/bin/python -m bench.traces_ingest [--seconds 10] [--in-flight 4]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from bench.harness import start_control_plane
from simulator.supervisor import Supervisor
from tracing.exporter import EXPORT_METHOD
from tracing.wire import (
    SpanKind,
    StatusCode,
    encode_export_request,
    encode_resource,
    encode_scope,
    encode_span,
    span_attributes,
)

SPANS_PER_REQUEST = 512
SPANS_PER_TRACE = 5
STAGES = ("client", "geo", "route", "wasm geo-hello")


def _trace(rng: random.Random, now_ns: int) -> list[bytes]:
    trace_id = rng.getrandbits(128).to_bytes(16, "big")
    server_id = rng.getrandbits(64).to_bytes(8, "big")
    status = 500 if rng.random() < 0.01 else 200
    server_attrs = span_attributes(
        {
            "http.request.method": "GET",
            "http.route": "/hello",
            "edgecdn.app.name": "geo-hello",
            "edgecdn.app.version": "1.0.0",
            "http.response.status_code": status,
            "url.path": "/hello",
            "edgecdn.client.country": "KR",
        }
    )
    duration = rng.randint(100_000, 2_000_000)
    spans = [
        encode_span(
            trace_id=trace_id, span_id=server_id, parent_span_id=b"", name="GET /hello",
            kind=SpanKind.SERVER, start_ns=now_ns, end_ns=now_ns + duration, attributes=server_attrs,
            status=StatusCode.ERROR if status == 500 else StatusCode.UNSET,
        )
    ]  # fmt: skip
    for n, stage in enumerate(STAGES):
        spans.append(
            encode_span(
                trace_id=trace_id, span_id=rng.getrandbits(64).to_bytes(8, "big"), parent_span_id=server_id,
                name=stage, kind=SpanKind.INTERNAL, start_ns=now_ns + n * 1000,
                end_ns=now_ns + n * 1000 + 900,
                attributes=span_attributes({"edgecdn.wasm.abi": "wagi"}) if stage.startswith("wasm") else b"",
            )
        )  # fmt: skip
    return spans


def prepare(count: int) -> list[bytes]:
    rng = random.Random(7)
    resource = encode_resource(
        {"service.name": "edge-node", "service.instance.id": "bench-a", "edgecdn.region": "ap-northeast-2"}
    )
    scope = encode_scope("bench")
    now = time.time_ns()
    requests = []
    for _ in range(count):
        spans: list[bytes] = []
        while len(spans) < SPANS_PER_REQUEST:
            spans += _trace(rng, now)
        requests.append(encode_export_request(resource, scope, spans[:SPANS_PER_REQUEST]))
    return requests


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def drive(address: str, token: str, requests: list[bytes], seconds: float, in_flight: int) -> int:
    sent = 0
    async with grpc.aio.insecure_channel(
        address, options=[("grpc.max_send_message_length", 8 << 20)]
    ) as channel:
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, ExportTraceServiceResponse]
        call = channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        metadata = (("authorization", f"Bearer {token}"),)
        deadline = time.monotonic() + seconds
        counter = iter(range(10**12))

        async def worker() -> None:
            nonlocal sent
            while time.monotonic() < deadline:
                request = requests[next(counter) % len(requests)]
                response = await call(request, metadata=metadata, timeout=30)
                sent += SPANS_PER_REQUEST - response.partial_success.rejected_spans

        await asyncio.gather(*(worker() for _ in range(in_flight)))
    return sent


async def measure(seconds: float, in_flight: int) -> dict[str, float]:
    requests = prepare(400)
    with tempfile.TemporaryDirectory(prefix="edgecdn-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with Supervisor(tmp / "run") as supervisor:
            control_plane = await start_control_plane(supervisor, tmp / "cp")
            cp = control_plane.child
            token, address = control_plane.tokens["node"], control_plane.address
            await drive(address, token, requests, 2.0, in_flight)  # warm-up
            cpu_before, started = cpu_seconds(cp.report.pid), time.monotonic()
            spans = await drive(address, token, requests, seconds, in_flight)
            elapsed, cpu = time.monotonic() - started, cpu_seconds(cp.report.pid) - cpu_before
    return {
        "spans": spans,
        "seconds": elapsed,
        "spans_per_second": spans / elapsed,
        "cpu_seconds": cpu,
        "spans_per_cpu_second": spans / cpu,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.traces_ingest", description=__doc__)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--in-flight", type=int, default=4)
    parser.add_argument("--json", type=Path, help="also write the figures here")
    args = parser.parse_args(argv)
    result = asyncio.run(measure(args.seconds, args.in_flight))
    print(
        f"control plane ingested {result['spans']:,.0f} spans in {result['seconds']:.1f} s: "
        f"{result['spans_per_second']:,.0f} spans/s; "
        f"{result['spans_per_cpu_second']:,.0f} spans per CPU-second "
        f"({result['cpu_seconds']:.1f} CPU-s) (target >= 20,000 spans/s)"
    )
    if args.json:
        args.json.write_text(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
