"""``edgecdn up``: every process traces into the world's control plane, which forwards to
the collector named in the operator's OTEL_EXPORTER_OTLP_ENDPOINT."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import aiohttp
import grpc
import pytest
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2_grpc

from tests.control_plane.test_traces_forward import RecordingReceiver
from tests.simulator.test_up import edgectl, running_world

TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT = "b7ad6b7169203331"


@pytest.mark.slow
async def test_world_traces_reach_its_control_plane_and_the_operators_collector(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    receiver = RecordingReceiver()
    server = grpc.aio.server()
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(receiver, server)  # type: ignore[no-untyped-call]
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", f"http://127.0.0.1:{port}")
    try:
        async for world in running_world(tmp_path / "state"):
            node = world.state.edge_nodes[0]
            headers = {"traceparent": f"00-{TRACE_ID}-{PARENT}-01"}
            async with (
                aiohttp.ClientSession() as client,
                client.get(f"{node.url}/hello", headers=headers) as response,
            ):
                assert response.status == 200
            deadline = time.monotonic() + 20
            while True:
                code, out, err = await edgectl(world.state_dir, "traces", "show", TRACE_ID, "-o", "json")
                if code == 0 and len(spans := json.loads(out)) >= 4:
                    break
                assert time.monotonic() < deadline, err
                await asyncio.sleep(0.2)
            server_span = next(s for s in spans if s["parent_span_id"] == PARENT)
            assert server_span["service"] == "edge-node"
            assert server_span["attributes"]["edgecdn.region"] == node.region
            assert server_span["attributes"]["edgecdn.app.version"] == "1.0.0"

            # The control plane traced its own RPCs (edgectl's calls among them).
            code, out, err = await edgectl(
                world.state_dir, "traces", "list", "--service", "control-plane", "-o", "json"
            )
            assert code == 0, err
            assert json.loads(out)

            while not any(
                span.trace_id.hex() == TRACE_ID
                for request in receiver.requests
                for resource_spans in request.resource_spans
                for scope_spans in resource_spans.scope_spans
                for span in scope_spans.spans
            ):
                assert time.monotonic() < deadline + 10, "nothing forwarded"
                await asyncio.sleep(0.2)
    finally:
        await server.stop(None)
