"""Test support: an in-process fault relay, a small upstream echo server, an admin client."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from faultrelay.clock import Clock
from faultrelay.config import LinkSpec, RelayConfig
from faultrelay.server import run

TOKEN = "test-token-0123456789"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
IO_TIMEOUT_S = 5.0


class FakeClock:
    """Both clocks, moved by hand."""

    def __init__(self, *, monotonic: float = 1000.0, wall: float = 1_700_000_000.0) -> None:
        self._monotonic = monotonic
        self._wall = wall

    def monotonic(self) -> float:
        return self._monotonic

    def wall(self) -> float:
        return self._wall

    def advance(self, seconds: float) -> None:
        self._monotonic += seconds
        self._wall += seconds


@dataclass(slots=True)
class EchoServer:
    """An upstream that echoes every byte and half-closes when the client does."""

    port: int = 0
    accepted: int = 0
    resets: int = 0
    closed: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # "eof" | "reset" per connection

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        outcome = "eof"
        try:
            while chunk := await reader.read(256 * 1024):
                writer.write(chunk)
                await writer.drain()
            writer.write_eof()
            await writer.drain()
        except ConnectionError:
            outcome = "reset"
            self.resets += 1
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
            self.closed.put_nowait(outcome)


@asynccontextmanager
async def echo_server() -> AsyncIterator[EchoServer]:
    echo = EchoServer()
    server = await asyncio.start_server(echo.handle, "127.0.0.1", 0)
    echo.port = server.sockets[0].getsockname()[1]
    try:
        yield echo
    finally:
        server.close()
        await server.wait_closed()


def free_port() -> int:
    """A port nothing listens on (to stand for an unreachable upstream, or fix a listen port)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True, slots=True, kw_only=True)
class LiveRelay:
    addresses: Mapping[str, str]

    @property
    def admin(self) -> str:
        return self.addresses["admin"]

    def port(self, link: str) -> int:
        return int(self.addresses[link].rsplit(":", 1)[1])


def relay_config(links: Mapping[str, str], **overrides: Any) -> RelayConfig:
    """``links``: name -> ``LISTEN_PORT:HOST:PORT``."""
    specs = tuple(LinkSpec.parse(f"{name}={target}") for name, target in links.items())
    return RelayConfig(links=specs, token=TOKEN, **overrides)


@asynccontextmanager
async def relay_in_process(config: RelayConfig, *, clock: Clock | None = None) -> AsyncIterator[LiveRelay]:
    """Run ``faultrelay.server.run`` in this event loop until the block ends."""
    ready: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(
        run(config, ready=lambda addresses: ready.set_result(dict(addresses)), stop=stop, clock=clock),
        name="test-faultrelay",
    )
    try:
        waiters: list[asyncio.Future[Any]] = [ready, task]
        done, _ = await asyncio.wait(waiters, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        yield LiveRelay(addresses=ready.result())
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@asynccontextmanager
async def admin_client(relay: LiveRelay, *, token: str = TOKEN) -> AsyncIterator[aiohttp.ClientSession]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    async with aiohttp.ClientSession(
        base_url=relay.admin, headers=headers, timeout=aiohttp.ClientTimeout(total=IO_TIMEOUT_S)
    ) as session:
        yield session


async def partition(session: aiohttp.ClientSession, link: str, **body: Any) -> dict[str, Any]:
    async with session.put(f"/links/{link}/fault", json={"kind": "partition", **body}) as response:
        assert response.status == 200, await response.text()
        answer: dict[str, Any] = await response.json()
        return answer


async def link_view(session: aiohttp.ClientSession, link: str) -> dict[str, Any]:
    async with session.get("/links") as response:
        assert response.status == 200
        views: list[dict[str, Any]] = await response.json()
    (view,) = [entry for entry in views if entry["name"] == link]
    return view


@asynccontextmanager
async def connect(port: int) -> AsyncIterator[tuple[asyncio.StreamReader, asyncio.StreamWriter]]:
    reader, writer = await asyncio.wait_for(asyncio.open_connection("127.0.0.1", port), IO_TIMEOUT_S)
    try:
        yield reader, writer
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()


async def echo_round_trip(port: int, payload: bytes = b"hello through the relay") -> bytes:
    """Send ``payload``, half-close, and read the echo until the relay closes."""
    async with connect(port) as (reader, writer):
        writer.write(payload)
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)


async def is_reset(port: int) -> bool:
    """Whether a new connection to ``port`` is reset (or closed) before any echo comes back."""
    try:
        async with connect(port) as (reader, writer):
            await asyncio.sleep(0.01)  # let an immediate reset arrive
            if writer.transport.is_closing():  # uvloop: the reset already closed it
                return True
            writer.write(b"anyone there?")
            data = await asyncio.wait_for(reader.read(100), IO_TIMEOUT_S)
            return data == b""
    except ConnectionError:
        return True


def state_path(tmp_path: Path) -> Path:
    return tmp_path / "faultrelay-state.json"
