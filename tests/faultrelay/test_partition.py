"""Partitions on real connections: open ones reset, new ones refused, heal and expiry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator

import pytest

from tests.faultrelay.support import (
    IO_TIMEOUT_S,
    EchoServer,
    FakeClock,
    LiveRelay,
    admin_client,
    connect,
    echo_round_trip,
    echo_server,
    is_reset,
    link_view,
    partition,
    relay_config,
    relay_in_process,
)


@pytest.fixture
async def echo() -> AsyncIterator[EchoServer]:
    async with echo_server() as server:
        yield server


@pytest.fixture
async def relay(echo: EchoServer) -> AsyncIterator[LiveRelay]:
    links = {"cp-ap-northeast-2": f"0:127.0.0.1:{echo.port}", "cp-eu-central-1": f"0:127.0.0.1:{echo.port}"}
    async with relay_in_process(relay_config(links)) as running:
        yield running


async def test_a_partition_resets_open_connections_at_once_and_refuses_new_ones(
    relay: LiveRelay, echo: EchoServer
) -> None:
    port = relay.port("cp-ap-northeast-2")
    async with admin_client(relay) as admin, connect(port) as (reader, writer):
        writer.write(b"before")
        assert await asyncio.wait_for(reader.readexactly(6), IO_TIMEOUT_S) == b"before"
        assert (await link_view(admin, "cp-ap-northeast-2"))["active_connections"] == 1

        answer = await partition(admin, "cp-ap-northeast-2", for_s=30)
        assert answer["fault"]["kind"] == "partition"
        assert 29 < answer["fault"]["remaining_s"] <= 30
        assert answer["active_connections"] == 0
        # Both peers see a reset, not an orderly end.
        with pytest.raises(ConnectionResetError):
            await asyncio.wait_for(reader.read(), IO_TIMEOUT_S)
        assert await asyncio.wait_for(echo.closed.get(), IO_TIMEOUT_S) == "reset"

        accepted_before = echo.accepted
        assert await is_reset(port)
        assert echo.accepted == accepted_before  # never reached the upstream
        view = await link_view(admin, "cp-ap-northeast-2")
        assert view["connections_reset"] == 2
        # The other link is untouched.
        assert await echo_round_trip(relay.port("cp-eu-central-1"), b"eu") == b"eu"
        assert (await link_view(admin, "cp-eu-central-1"))["fault"] is None


async def test_heal_lets_new_connections_through(relay: LiveRelay) -> None:
    port = relay.port("cp-ap-northeast-2")
    async with admin_client(relay) as admin:
        await partition(admin, "cp-ap-northeast-2")  # until healed
        assert (await link_view(admin, "cp-ap-northeast-2"))["fault"]["remaining_s"] is None
        assert await is_reset(port)
        async with admin.delete("/links/cp-ap-northeast-2/fault") as response:
            assert response.status == 200
            healed = await response.json()
        assert healed["link"] == "cp-ap-northeast-2"
        assert healed["healed"]["kind"] == "partition"
        assert await echo_round_trip(port) == b"hello through the relay"
        async with admin.delete("/links/cp-ap-northeast-2/fault") as response:
            assert (await response.json())["healed"] is None  # healing twice is harmless


async def test_delete_faults_heals_every_link(relay: LiveRelay) -> None:
    async with admin_client(relay) as admin:
        await partition(admin, "cp-ap-northeast-2", for_s=60)
        await partition(admin, "cp-eu-central-1")
        async with admin.delete("/faults") as response:
            assert response.status == 200
            healed = (await response.json())["healed"]
        assert [entry["link"] for entry in healed] == ["cp-ap-northeast-2", "cp-eu-central-1"]
        for link in ("cp-ap-northeast-2", "cp-eu-central-1"):
            assert await echo_round_trip(relay.port(link), link.encode()) == link.encode()


async def test_replacing_a_fault_keeps_one(relay: LiveRelay) -> None:
    async with admin_client(relay) as admin:
        await partition(admin, "cp-ap-northeast-2", for_s=5)
        answer = await partition(admin, "cp-ap-northeast-2", for_s=100, reason="longer")
        assert answer["fault"]["for_s"] == 100
        assert answer["fault"]["reason"] == "longer"


async def test_a_partition_expires_by_itself(relay: LiveRelay, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="faultrelay")
    port = relay.port("cp-ap-northeast-2")
    async with admin_client(relay) as admin:
        await partition(admin, "cp-ap-northeast-2", for_s=0.3)
        assert await is_reset(port)
        await asyncio.sleep(0.4)
        assert await echo_round_trip(port) == b"hello through the relay"
        assert (await link_view(admin, "cp-ap-northeast-2"))["fault"] is None
    messages = [record.getMessage() for record in caplog.records]
    assert any(m.startswith("fault set on link cp-ap-northeast-2: partition for 0.3s") for m in messages)
    assert any(m.startswith("fault expired on link cp-ap-northeast-2: partition") for m in messages)


async def test_expiry_follows_the_injected_clock(echo: EchoServer) -> None:
    clock = FakeClock()
    config = relay_config({"cp": f"0:127.0.0.1:{echo.port}"})
    async with relay_in_process(config, clock=clock) as relay, admin_client(relay) as admin:
        await partition(admin, "cp", for_s=30)
        clock.advance(29.9)
        assert await is_reset(relay.port("cp"))
        assert (await link_view(admin, "cp"))["fault"]["remaining_s"] == pytest.approx(0.1)
        clock.advance(0.1)  # no timer has fired: the fault is over all the same
        assert await echo_round_trip(relay.port("cp"), b"free") == b"free"
        assert (await link_view(admin, "cp"))["fault"] is None
