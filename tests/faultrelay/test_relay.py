"""Relaying real TCP connections: bytes both ways, flow control, half-close, a dead upstream."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import socket
import time

import aiohttp

from tests.faultrelay.support import (
    IO_TIMEOUT_S,
    admin_client,
    connect,
    echo_round_trip,
    echo_server,
    free_port,
    link_view,
    relay_config,
    relay_in_process,
)

BIG = 4 * 1024 * 1024


async def test_bytes_go_both_ways_and_half_close_passes_through() -> None:
    async with (
        echo_server() as echo,
        relay_in_process(relay_config({"cp": f"0:127.0.0.1:{echo.port}"})) as relay,
    ):
        assert await echo_round_trip(relay.port("cp"), b"ping") == b"ping"
        # The client half-closed; the echo still answered, then closed its side too.
        assert await asyncio.wait_for(echo.closed.get(), IO_TIMEOUT_S) == "eof"
        async with admin_client(relay) as admin:
            view = await link_view(admin, "cp")
        assert view["bytes_to_upstream"] == 4
        assert view["bytes_to_client"] == 4
        assert view["connections_total"] == 1
        assert view["fault"] is None


async def test_a_few_megabytes_both_ways_arrive_intact() -> None:
    payload = os.urandom(BIG)
    async with (
        echo_server() as echo,
        relay_in_process(relay_config({"cp": f"0:127.0.0.1:{echo.port}"})) as relay,
        connect(relay.port("cp")) as (reader, writer),
    ):

        async def send() -> None:
            for start in range(0, BIG, 64 * 1024):
                writer.write(payload[start : start + 64 * 1024])
                await writer.drain()
            writer.write_eof()

        sender = asyncio.create_task(send())
        echoed = await asyncio.wait_for(reader.read(), 30)
        await sender
        assert hashlib.sha256(echoed).digest() == hashlib.sha256(payload).digest()


async def test_a_stalled_upstream_stops_the_relay_reading_from_the_client() -> None:
    """Flow control: while the upstream reads nothing, the relay reads a bounded amount."""
    upstream = socket.socket()
    upstream.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)  # inherited by the accepted socket
    upstream.bind(("127.0.0.1", 0))
    upstream.listen()
    upstream.setblocking(False)
    loop = asyncio.get_running_loop()
    total = 24 * 1024 * 1024
    payload = os.urandom(total)
    config = relay_config({"cp": f"0:127.0.0.1:{upstream.getsockname()[1]}"})
    with upstream:
        async with relay_in_process(config) as relay, connect(relay.port("cp")) as (_reader, writer):
            accepted, _ = await asyncio.wait_for(loop.sock_accept(upstream), IO_TIMEOUT_S)
            with accepted:
                writer.write(payload)  # as much as the kernel takes; the rest waits in the writer
                async with admin_client(relay) as admin:
                    carried = await _settled(admin)
                    # Relay-side buffering is its socket send buffer (<= tcp_wmem max, 4 MiB
                    # here) plus asyncio's 64 KiB high-water mark and one chunk.
                    assert carried < 8 * 1024 * 1024, carried
                    received = await _read_exactly(loop, accepted, total)
                    assert hashlib.sha256(received).digest() == hashlib.sha256(payload).digest()
                    assert (await link_view(admin, "cp"))["bytes_to_upstream"] == total


async def _settled(admin: aiohttp.ClientSession) -> int:
    """bytes_to_upstream once it stops growing."""
    last = -1
    deadline = time.monotonic() + IO_TIMEOUT_S
    while time.monotonic() < deadline:
        await asyncio.sleep(0.2)
        carried = int((await link_view(admin, "cp"))["bytes_to_upstream"])
        if carried == last:
            return carried
        last = carried
    return last


async def _read_exactly(loop: asyncio.AbstractEventLoop, sock: socket.socket, size: int) -> bytes:
    received = bytearray()
    async with asyncio.timeout(30):
        while len(received) < size:
            chunk = await loop.sock_recv(sock, 1024 * 1024)
            assert chunk, "upstream connection closed early"
            received += chunk
    return bytes(received)


async def test_an_unreachable_upstream_closes_the_client_promptly() -> None:
    config = relay_config({"cp": f"0:127.0.0.1:{free_port()}"})
    async with relay_in_process(config) as relay:
        started = time.monotonic()
        async with connect(relay.port("cp")) as (reader, writer):
            writer.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
            with contextlib.suppress(ConnectionError):
                assert await asyncio.wait_for(reader.read(), IO_TIMEOUT_S) == b""
        assert time.monotonic() - started < 1.0
        async with admin_client(relay) as admin:
            view = await link_view(admin, "cp")
        assert view["upstream_failures"] == 1
        assert view["active_connections"] == 0


async def test_an_upstream_close_is_passed_on_and_the_pipe_ends() -> None:
    async def greet_and_close(_reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"bye")
        writer.close()
        await writer.wait_closed()

    server = await asyncio.start_server(greet_and_close, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    async with (
        server,
        relay_in_process(relay_config({"cp": f"0:127.0.0.1:{port}"})) as relay,
        connect(relay.port("cp")) as (reader, writer),
    ):
        # The upstream's FIN reaches the client as end of stream; TCP cannot tell a close
        # from a half-close, so the relay keeps the client's direction open until it ends.
        assert await asyncio.wait_for(reader.read(), IO_TIMEOUT_S) == b"bye"
        writer.write_eof()
        async with admin_client(relay) as admin:
            for _ in range(50):
                if (await link_view(admin, "cp"))["active_connections"] == 0:
                    break
                await asyncio.sleep(0.02)
            else:
                raise AssertionError("the relayed connection stayed open")
