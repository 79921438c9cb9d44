"""Issue 24 over real HTTP, on a real edge node: one answer per request (finding 5), and
what a client learns of a failure (finding 6, HTTP half).

A CONNECT or upgrade request gets one 501 and the connection closes, before any handler
runs; an HTTP/0.9 request line gets 400. A failure inside the node shows the client its
kind and a request id only; the module's digest and wasmtime's message go to the node's
log (under that id) and to the request's trace.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
import time
from pathlib import Path

import aiohttp
import pytest
import wasmtime

from edge_node.errors import HANDLER_MESSAGES
from geo.world import World
from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tests.edge_node.conftest import REGION, TEST_MODULES, WORLD_FILE, client_from, node_url, write_test_app
from tests.edge_node.test_agent import start_control_plane
from tests.edge_node.test_server import raw_exchange
from tests.edge_node.test_tracing import wait_for_trace

TRAP_DIGEST = hashlib.sha256(wasmtime.wat2wasm(TEST_MODULES["trap"][0])).hexdigest()
# What a trap answer used to show a client: the module's sha256 and wasmtime's words.
INTERNALS = (TRAP_DIGEST, "wasm", "backtrace", "unreachable", "trapped", "module", "digest")
WEBSOCKET = (
    b"GET /m/env HTTP/1.1\r\nhost: edge.test\r\nconnection: Upgrade\r\nupgrade: websocket\r\n"
    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
)
NEXT = b"GET /m/env HTTP/1.1\r\nhost: edge.test\r\nconnection: close\r\n\r\n"


@pytest.mark.parametrize(
    "head",
    [
        WEBSOCKET,
        b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nhost: 127.0.0.1:80\r\n\r\n",
    ],
    ids=["websocket", "connect"],
)
async def test_upgrade_and_connect_get_one_501_and_the_connection_closes(
    edge_node: RunningChild, world: World, head: bytes
) -> None:
    before = await handler_runs(edge_node)
    # A request after it on the same connection is never served: after an upgrade's head
    # the bytes belong to another protocol.
    answer = await raw_exchange(world, node_url(edge_node), head + NEXT)
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    head_out, _, body = answer.partition(b"\r\n\r\n")
    assert head_out.startswith(b"HTTP/1.1 501 Not Implemented\r\n")
    assert b"\r\nconnection: close\r\n" in head_out + b"\r\n"
    assert json.loads(body)["error"] == "not_implemented"
    assert await handler_runs(edge_node) == before  # refused before any handler ran


@pytest.mark.parametrize(
    "data",
    [
        b"GET /m/env\r\n\r\n" + NEXT,
        b"GET /m/env\r\nhost: edge.test\r\n\r\n" + NEXT,
        b"GET /m/env\r\n",  # alone, as an HTTP/0.9 client sends it: refused at once, not in 30 s
    ],
    ids=["blank-line", "headers", "alone"],
)
async def test_an_http09_request_line_is_refused_with_400(
    edge_node: RunningChild, world: World, data: bytes
) -> None:
    before = await handler_runs(edge_node)
    answer = await raw_exchange(world, node_url(edge_node), data)
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    assert answer.startswith(b"HTTP/1.1 400 Bad Request\r\n")
    assert b"HTTP/0.9" in answer
    assert await handler_runs(edge_node) == before


async def test_a_trap_answer_has_the_kind_and_request_id_and_the_log_has_the_detail(
    edge_node: RunningChild, world: World
) -> None:
    async with client_from(world, "KR") as client, client.get(f"{node_url(edge_node)}/m/trap") as response:
        assert response.status == 500
        request_id = response.headers["x-request-id"]
        text = await response.text()
    error = json.loads(text)
    assert error == {"error": "handler_trap", "message": "the handler failed", "request_id": request_id}
    assert len(request_id) == 16
    for internal in INTERNALS:
        assert internal not in text.replace("handler_trap", "")
    line = await log_line(edge_node, request_id)
    assert TRAP_DIGEST in line
    assert "unreachable" in line  # wasmtime's trap
    assert "GET /m/trap answered 500 handler_trap" in line


@pytest.mark.parametrize(
    ("path", "kind", "detail"),
    [
        ("/m/loop", "deadline_exceeded", '"timeout_ms": 50'),
        ("/m/hog", "memory_limit_exceeded", '"limit_bytes": 1048576'),
        ("/m/flood", "output_too_large", '"limit_bytes"'),
        ("/m/garbage", "invalid_handler_output", '"reason"'),
    ],
)
async def test_other_handler_failures_show_the_kind_only(
    edge_node: RunningChild, world: World, path: str, kind: str, detail: str
) -> None:
    async with client_from(world, "KR") as client, client.get(node_url(edge_node) + path) as response:
        request_id = response.headers["x-request-id"]
        error = await response.json()
    assert error == {"error": kind, "message": HANDLER_MESSAGES[kind], "request_id": request_id}
    line = await log_line(edge_node, request_id)
    assert detail in line
    assert '"digest"' in line


async def test_the_clients_own_mistakes_keep_their_detail_and_get_a_request_id(
    edge_node: RunningChild, world: World
) -> None:
    async with client_from(world, "KR") as client, client.get(f"{node_url(edge_node)}/nowhere") as response:
        assert response.status == 404
        error = await response.json()
    assert error["request_id"] == response.headers["x-request-id"]
    assert error["message"] == "no route of app edge-test@1.2.3 matches /nowhere"


async def test_a_trap_is_in_the_trace_with_its_request_id(
    supervisor: Supervisor, tmp_path: Path, world: World
) -> None:
    cp = await start_control_plane(supervisor, tmp_path / "cp")
    app = write_test_app(tmp_path / "app")
    node = await supervisor.start(
        ChildSpec(
            name="node",
            argv=(
                sys.executable, "-m", "edge_node", "--app", str(app), "--region", REGION,
                "--world", str(WORLD_FILE), "--data-dir", str(tmp_path / "node"),
            ),
            env={
                "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://{cp.address}",
                "OTEL_EXPORTER_OTLP_HEADERS": f"authorization=Bearer%20{cp.tokens['node']}",
            },
        )
    )  # fmt: skip
    trace_id = "5eed" * 8
    traceparent = f"00-{trace_id}-00f067aa0ba902b7-01"
    async with (
        client_from(world, "KR") as client,
        client.get(f"{node_url(node)}/m/trap", headers={"traceparent": traceparent}) as response,
    ):
        assert response.status == 500
        request_id = response.headers["x-request-id"]
        assert TRAP_DIGEST not in await response.text()
    spans = {span["name"]: span for span in await wait_for_trace(cp, trace_id, 4)}
    server = spans["GET /m/trap"]
    assert server["attributes"]["edgecdn.request_id"] == request_id
    assert server["attributes"]["error.type"] == "handler_trap"
    wasm = spans["wasm trap"]
    assert wasm["attributes"]["edgecdn.wasm.digest"] == TRAP_DIGEST
    assert wasm["status"] == "error"
    assert "unreachable" in json.dumps(wasm) + json.dumps(server)  # wasmtime's words: the status
    assert trace_id in await log_line(node, request_id)


async def handler_runs(node: RunningChild) -> float:
    """How many handler runs the node has timed so far (its latency histogram's count)."""
    async with aiohttp.ClientSession() as client, client.get(f"{node_url(node)}/metrics") as response:
        text = await response.text()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("edge_handler_duration_seconds_count")
    )


async def log_line(node: RunningChild, request_id: str, timeout_s: float = 5.0) -> str:
    """The node's log line about ``request_id`` (logging writes it as the request ends)."""
    deadline = time.monotonic() + timeout_s
    while True:
        for line in node.log_path.read_text().splitlines():
            if f"request {request_id}:" in line:
                return line
        assert time.monotonic() < deadline, f"no log line for request {request_id}"
        await asyncio.sleep(0.05)
