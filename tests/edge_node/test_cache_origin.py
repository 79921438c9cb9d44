"""The HTTP cache in a real edge node process, in front of a scripted origin in this process
(and of a wasm handler that sends cache directives): hits, variants, validation, collapsing,
invalidation, Range, stale answers with the origin gone, and the disk tier across a kill -9."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
import wasmtime
from aiohttp import web

from httpcache import disk
from simulator.supervisor import RunningChild, Supervisor
from tests.edge_node.conftest import edge_node_spec
from tests.wasm_host import wat

BODY = b"0123456789" * 20


@dataclass
class Origin:
    """An origin whose answers the test scripts; it counts what it was asked."""

    hits: dict[str, int] = field(default_factory=dict)
    seen: list[dict[str, str]] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    slow_asked: asyncio.Event = field(default_factory=asyncio.Event)
    language_bodies: dict[str, bytes] = field(default_factory=dict)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        name = request.path.removeprefix("/o/").split("/")[0]
        self.hits[name] = self.hits.get(name, 0) + 1
        self.seen.append(dict(request.headers))
        if name == "fresh":
            return web.Response(body=BODY, headers={"cache-control": "max-age=60", "cache-tag": "fresh,all"})
        if name == "vary":
            language = request.headers.get("accept-language", "")
            return web.Response(
                body=f"hello in {language or 'none'}".encode(),
                headers={"cache-control": "max-age=60", "vary": "accept-language"},
            )
        if name == "validated":
            if request.headers.get("if-none-match") == '"v1"':
                return web.Response(status=304, headers={"etag": '"v1"', "cache-control": "max-age=0"})
            return web.Response(
                body=b"validated body", headers={"etag": '"v1"', "cache-control": "max-age=0"}
            )
        if name == "slow":
            self.slow_asked.set()
            await self.gate.wait()
            return web.Response(body=b"slow body", headers={"cache-control": "max-age=60"})
        if name == "fragile":
            return web.Response(
                body=b"fragile body",
                headers={"cache-control": "max-age=0, stale-if-error=600", "etag": '"f1"'},
            )
        if name == "private":
            return web.Response(body=b"mine", headers={"cache-control": "private, max-age=60"})
        return web.Response(status=404)


APP = """
[app]
name = "cache-test"
version = "1.0.0"

[[route]]
path = "/o/..."
origin = "{origin}"

[[route]]
path = "/raw/..."
origin = "{raw_origin}"

[[route]]
path = "/h/cached"
module = "cached"

[module.cached]
source = "cached.wasm"
"""


@dataclass
class World:
    origin: Origin
    origin_runner: web.AppRunner
    url: str
    node: RunningChild
    supervisor: Supervisor
    app: Path
    data: Path


async def _origin_server(origin: Origin) -> tuple[web.AppRunner, str]:
    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", origin.handle)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}"


# An origin that sends more than its Content-Length says (then the next answer on the same
# connection): a client gets the Content-Length bytes, as from nginx, and the connection's
# next answer is unharmed.
SURPLUS_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nCache-Control: no-store\r\n\r\nhelloSURPLUS\r\n"


async def _answer_with_surplus(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
        while True:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(SURPLUS_ANSWER)
            await writer.drain()
    writer.close()


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    origin = Origin()
    runner, origin_url = await _origin_server(origin)
    raw_origin = await asyncio.start_server(_answer_with_surplus, "127.0.0.1", 0)
    raw_port = raw_origin.sockets[0].getsockname()[1]
    app = tmp_path / "app"
    app.mkdir()
    (app / "cached.wasm").write_bytes(
        wasmtime.wat2wasm(wat.wagi_print(b"content-type: text/plain\ncache-control: max-age=60\n\nfrom wasm"))
    )
    (app / "app.toml").write_text(APP.format(origin=origin_url, raw_origin=f"http://127.0.0.1:{raw_port}"))
    try:
        async with Supervisor(tmp_path / "run") as supervisor:
            node = await supervisor.start(
                edge_node_spec(app / "app.toml", tmp_path / "data", "--cache-dir", str(tmp_path / "cache"))
            )
            yield World(
                origin, runner, node.report.addresses["http"], node, supervisor, app, tmp_path / "data"
            )
    finally:
        raw_origin.close()
        await runner.cleanup()


async def _get(url: str, **headers: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as client, client.get(url, headers=headers) as response:
        return response.status, {k.lower(): v for k, v in response.headers.items()}, await response.read()


async def test_a_fresh_answer_is_served_from_the_cache(world: World) -> None:
    status, headers, body = await _get(f"{world.url}/o/fresh")
    assert (status, headers["x-cache"], body) == (200, "MISS", BODY)
    status, headers, body = await _get(f"{world.url}/o/fresh")
    assert (status, headers["x-cache"], body) == (200, "HIT", BODY)
    assert int(headers["age"]) >= 0
    assert "cache-tag" not in headers  # the CDN's purge tags are not the client's business
    assert world.origin.hits["fresh"] == 1


async def test_vary_keeps_one_variant_per_language(world: World) -> None:
    for language in ("ko", "ja", "ko", "ja"):
        _, _, body = await _get(f"{world.url}/o/vary", **{"accept-language": language})
        assert body == f"hello in {language}".encode()
    assert world.origin.hits["vary"] == 2


async def test_validation_upstream_and_a_304_to_the_client(world: World) -> None:
    await _get(f"{world.url}/o/validated")
    status, headers, body = await _get(f"{world.url}/o/validated")
    assert (status, headers["x-cache"], body) == (200, "REVALIDATED", b"validated body")
    assert world.origin.seen[-1].get("If-None-Match") == '"v1"'
    status, headers, body = await _get(f"{world.url}/o/validated", **{"if-none-match": '"v1"'})
    assert (status, body) == (304, b"")


async def test_fifty_concurrent_misses_make_one_origin_request(world: World) -> None:
    pending = [asyncio.ensure_future(_get(f"{world.url}/o/slow")) for _ in range(50)]
    await world.origin.slow_asked.wait()
    # Requests that reach the node after the gate opens are plain hits: one origin request
    # either way, so this pause only makes it likely that most of them wait on the first.
    await asyncio.sleep(0.2)
    world.origin.gate.set()
    answers = await asyncio.gather(*pending)
    assert {(status, body) for status, _, body in answers} == {(200, b"slow body")}
    assert world.origin.hits["slow"] == 1


async def test_unsafe_methods_invalidate(world: World) -> None:
    await _get(f"{world.url}/o/fresh")
    async with aiohttp.ClientSession() as client, client.post(f"{world.url}/o/fresh", data=b"x") as response:
        assert response.status == 200
    _, headers, _ = await _get(f"{world.url}/o/fresh")
    assert headers["x-cache"] == "MISS"


async def test_range_from_a_cached_answer(world: World) -> None:
    await _get(f"{world.url}/o/fresh")
    status, headers, body = await _get(f"{world.url}/o/fresh", range="bytes=0-3")
    assert (status, body, headers["content-range"]) == (206, b"0123", f"bytes 0-3/{len(BODY)}")


async def test_an_origin_body_longer_than_its_content_length_is_cut_to_it(world: World) -> None:
    for _ in range(3):  # the connection's next answers too
        status, headers, body = await _get(f"{world.url}/raw/x")
        assert (status, headers["content-length"], body) == (200, "5", b"hello")


async def test_private_answers_are_not_shared(world: World) -> None:
    await _get(f"{world.url}/o/private")
    await _get(f"{world.url}/o/private")
    assert world.origin.hits["private"] == 2


async def test_stale_if_error_when_the_origin_is_gone(world: World) -> None:
    await _get(f"{world.url}/o/fragile")
    await world.origin_runner.cleanup()  # the origin's listener is closed: connections refused
    status, headers, body = await _get(f"{world.url}/o/fragile")
    assert (status, headers["x-cache"], body) == (200, "STALE", b"fragile body")


async def test_a_handler_answer_with_directives_is_cached(world: World) -> None:
    _, headers, body = await _get(f"{world.url}/h/cached")
    assert (headers.get("x-cache"), body) == ("MISS", b"from wasm")
    _, headers, body = await _get(f"{world.url}/h/cached")
    assert (headers.get("x-cache"), body) == ("HIT", b"from wasm")


def _whole_files(cache_dir: Path) -> list[Path]:
    return [p for p in cache_dir.glob("*/*/*") if not p.name.startswith(disk.TMP_PREFIX)]


async def _stored_on_disk(cache_dir: Path) -> None:
    """Until the disk tier's thread has written a whole file (writes are queued off the loop;
    another process's files can only be polled)."""
    while not _whole_files(cache_dir):  # noqa: ASYNC110
        await asyncio.sleep(0.01)


async def test_the_disk_tier_survives_kill_9(world: World, tmp_path: Path) -> None:
    await _get(f"{world.url}/o/fresh")
    await asyncio.wait_for(_stored_on_disk(tmp_path / "cache"), 10)
    os.kill(world.node.pid, signal.SIGKILL)
    await world.node.process.wait()
    again = await world.supervisor.start(
        edge_node_spec(
            world.app / "app.toml", world.data, "--cache-dir", str(tmp_path / "cache"), name="edge-node-again"
        )
    )
    status, headers, body = await _get(f"{again.report.addresses['http']}/o/fresh")
    assert (status, headers["x-cache"], body) == (200, "HIT", BODY)
    assert world.origin.hits["fresh"] == 1
