"""Issue 24 through the router's front door, as on an edge node: CONNECT and upgrade
requests get one 501 and never reach a node, an HTTP/0.9 request line gets 400, and a
trapping handler's answer reaches the client with its kind and request id only."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from geo.world import World
from simulator.supervisor import RunningChild, Supervisor
from tests.edge_node.conftest import write_test_app
from tests.edge_node.test_http_adapter_answers import NEXT, TRAP_DIGEST, WEBSOCKET, handler_runs, log_line
from tests.edge_node.test_server import raw_exchange
from tests.router.conftest import client_from, node_spec, router_spec, url_of

REGION = "ap-northeast-2"


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def front_door(
    tmp_path_factory: pytest.TempPathFactory, geo_cache_dir: Path
) -> AsyncIterator[tuple[RunningChild, RunningChild]]:
    """A router in front of one edge node serving the edge node tests' app (traps and all)."""
    base = tmp_path_factory.mktemp("front-door")
    app = write_test_app(base / "app")
    async with Supervisor(base / "run") as supervisor:
        spec = node_spec(REGION, base / "data", geo_cache_dir)
        argv = list(spec.argv)
        argv[argv.index("--app") + 1] = str(app)
        node = await supervisor.start(dataclasses.replace(spec, argv=tuple(argv)))
        router = await supervisor.start(
            router_spec(geo_cache_dir, "--wan", "off", "--edge", f"{REGION}={url_of(node)}")
        )
        yield router, node


@pytest.mark.parametrize(
    ("head", "status", "kind"),
    [
        (WEBSOCKET + NEXT, 501, "not_implemented"),
        (b"CONNECT 127.0.0.1:80 HTTP/1.1\r\nhost: 127.0.0.1:80\r\n\r\n" + NEXT, 501, "not_implemented"),
        # Alone: HTTP/0.9 has no keep-alive, so a request after it is malformed anyway.
        (b"GET /m/env\r\n\r\n", 400, "bad_request"),
    ],
    ids=["websocket", "connect", "http09"],
)
async def test_the_router_answers_a_refused_request_once_and_never_forwards_it(
    front_door: tuple[RunningChild, RunningChild], world: World, head: bytes, status: int, kind: str
) -> None:
    router, node = front_door
    before = await handler_runs(node)
    answer = await raw_exchange(world, url_of(router), head)
    assert answer.count(b"HTTP/1.1 ") == 1, answer
    head_out, _, body = answer.partition(b"\r\n\r\n")
    assert head_out.startswith(b"HTTP/1.1 %d " % status)
    assert b"\r\nconnection: close" in head_out
    assert json.loads(body)["error"] == kind
    assert await handler_runs(node) == before


async def test_a_trap_answer_through_the_router_has_no_internals(
    front_door: tuple[RunningChild, RunningChild], world: World
) -> None:
    router, node = front_door
    async with client_from(world, "KR") as client, client.get(f"{url_of(router)}/m/trap") as response:
        assert response.status == 500
        request_id = response.headers["x-request-id"]
        text = await response.text()
    assert json.loads(text) == {
        "error": "handler_trap",
        "message": "the handler failed",
        "request_id": request_id,
    }
    assert TRAP_DIGEST in await log_line(node, request_id)  # the node's log has what the client has not
