"""The cache's fast path in a real edge node process, in front of an origin in this process:
a plain request for a fresh entry is replayed (one ``server-timing`` stage) with the very
fields the full path answered, counted alike; anything the policy must read, and any change
to the entry, goes the full way."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from simulator.supervisor import Supervisor
from tests.edge_node.conftest import edge_node_spec

APP = """
[app]
name = "fast-hits"
version = "1.0.0"

[[route]]
path = "/c/..."
origin = "{origin}"
"""
# Fields that differ between two answers of one entry whichever path answers.
PER_ANSWER = {"date", "age", "server-timing"}


@dataclass
class Origin:
    hits: dict[str, int] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        if request.method == "POST":
            return web.Response(status=204)
        if request.headers.get("if-none-match") == '"e1"':
            return web.Response(status=304, headers={"etag": '"e1"', "cache-control": "max-age=600"})
        body = f"{request.path} #{self.hits[request.path]}".encode()
        return web.Response(
            body=body, headers={"cache-control": "max-age=600", "etag": '"e1"', "x-origin": "kept"}
        )


@dataclass
class Node:
    url: str
    port: int
    origin: Origin


@pytest.fixture
async def node(tmp_path: Path) -> AsyncIterator[Node]:
    origin = Origin()
    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", origin.handle)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    app = tmp_path / "app.toml"
    app.write_text(APP.format(origin=f"http://127.0.0.1:{runner.addresses[0][1]}"))
    try:
        async with Supervisor(tmp_path / "run") as supervisor:
            child = await supervisor.start(edge_node_spec(app, tmp_path / "data"))
            url = child.report.addresses["http"]
            yield Node(url, int(url.rsplit(":", 1)[1]), origin)
    finally:
        await runner.cleanup()


async def _get(url: str, method: str = "GET", **headers: str) -> tuple[int, list[tuple[str, str]], bytes]:
    async with aiohttp.ClientSession() as client, client.request(method, url, headers=headers) as response:
        fields = [(k.lower(), v) for k, v in response.headers.items()]
        return response.status, fields, await response.read()


def _field(fields: list[tuple[str, str]], name: str) -> str:
    return next(value for key, value in fields if key == name)


async def _metric(url: str, pattern: str) -> float:
    async with aiohttp.ClientSession() as client, client.get(f"{url}/metrics") as response:
        text = await response.text()
    found = re.search(pattern + r" ([0-9.e+]+)", text)
    return float(found.group(1)) if found else 0.0


async def test_a_fresh_hit_is_replayed_with_the_fields_the_full_path_answered(node: Node) -> None:
    _, first, _ = await _get(f"{node.url}/c/a")
    assert _field(first, "x-cache") == "MISS"
    _, full, full_body = await _get(f"{node.url}/c/a")  # the full path's hit, which the plan keeps
    assert _field(full, "x-cache") == "HIT"
    assert "client;dur=" in _field(full, "server-timing")
    hits_before = await _metric(node.url, r'edge_cache_results_total\{[^}]*result="HIT"[^}]*\}')
    requests_before = await _metric(node.url, r'edge_requests_total\{route="/c/...",status="200"\}')
    status, replayed, body = await _get(f"{node.url}/c/a")
    assert (status, body) == (200, full_body)
    assert re.fullmatch(r"cache;dur=\d+\.\d{3}", _field(replayed, "server-timing"))
    assert [f for f in replayed if f[0] not in PER_ANSWER] == [f for f in full if f[0] not in PER_ANSWER]
    assert [name for name, _ in replayed] == [name for name, _ in full]  # the same order
    assert _field(replayed, "x-origin") == "kept"
    assert await _metric(node.url, r'edge_cache_results_total\{[^}]*result="HIT"[^}]*\}') == hits_before + 1
    assert (
        await _metric(node.url, r'edge_requests_total\{route="/c/...",status="200"\}') == requests_before + 1
    )
    # The full-path hit and the replay (the miss went on as a task; /metrics is not counted).
    assert await _metric(node.url, "edge_requests_answered_in_callback_total") == 2
    assert node.origin.hits["/c/a"] == 1


async def test_what_the_policy_must_read_still_gets_the_policys_answer(node: Node) -> None:
    for _ in range(3):
        _, _, body = await _get(f"{node.url}/c/b")
    assert body == b"/c/b #1"
    status, fields, body = await _get(f"{node.url}/c/b", range="bytes=0-1")
    assert (status, body, _field(fields, "content-range")) == (206, b"/c", "bytes 0-1/7")
    status, fields, body = await _get(f"{node.url}/c/b", **{"if-none-match": '"e1"'})
    assert (status, body) == (304, b"")
    status, fields, body = await _get(f"{node.url}/c/b", method="HEAD")
    assert (status, body, _field(fields, "content-length")) == (200, b"", "7")
    assert _field(fields, "x-cache") == "HIT"
    status, fields, body = await _get(f"{node.url}/c/b", **{"cache-control": "no-cache"})
    assert (_field(fields, "x-cache"), body) == ("REVALIDATED", b"/c/b #1")
    assert node.origin.hits["/c/b"] == 2  # the first fetch and the no-cache revalidation


async def test_a_change_to_the_entry_ends_its_replays(node: Node) -> None:
    for _ in range(3):
        _, _, body = await _get(f"{node.url}/c/d")
    assert body == b"/c/d #1"
    status, _, _ = await _get(f"{node.url}/c/d", method="POST")  # invalidates (RFC 9111 4.4)
    assert status == 204
    _, fields, body = await _get(f"{node.url}/c/d")
    assert (_field(fields, "x-cache"), body) == ("MISS", b"/c/d #3")


async def test_a_replay_to_a_client_that_closes_says_so_and_closes(node: Node) -> None:
    for _ in range(3):
        await _get(f"{node.url}/c/e")
    reader, writer = await asyncio.open_connection("127.0.0.1", node.port)
    writer.write(b"GET /c/e HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    answer = await asyncio.wait_for(reader.read(), timeout=10)  # to the end: the node closes
    writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\nconnection: close" in head
    assert b"\r\nserver-timing: cache;dur=" in head
    assert body == b"/c/e #1"
