"""The load engine against a real HTTP server: open-loop timing, regions, errors, checks."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
from urllib.parse import urlsplit

import pytest

from geo.world import World
from simulator.load.client import RequestSpec
from simulator.load.engine import Engine, EngineConfig
from simulator.load.plan import Mix, Phase, Plan, parse_mix
from simulator.load.recorder import Recorder
from tests.simulator.load.conftest import Server


def config_for(
    url: str,
    world: World,
    *,
    path: str = "/",
    mix: Mix | None = None,
    rate: float | None = 200.0,
    concurrency: int | None = None,
    seconds: float = 1.0,
    connections: int = 8,
    timeout_s: float = 10.0,
    expect_body: str | None = None,
) -> EngineConfig:
    parts = urlsplit(url)
    mix = mix or parse_mix("KR=1,DE=1")
    phase = Phase(
        name="p", kind="steady", duration_s=seconds, mix=mix,
        rate_start=None if concurrency else rate, concurrency=concurrency,
    )  # fmt: skip
    return EngineConfig(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 80,
        host_header=parts.netloc,
        request=RequestSpec(path=path),
        plan=Plan(phases=(phase,)),
        addresses={cc: (world.country(cc).client_address(1),) for cc in mix.countries},
        connections=connections,
        timeout_s=timeout_s,
        expect_body=expect_body,
    )


async def run(config: EngineConfig) -> Recorder:
    return await Engine(config, stop=asyncio.Event()).run()


async def test_open_loop_latency_shows_a_server_stall(echo_server: Server, world: World) -> None:
    """The server freezes for 0.5 s: every request due meanwhile counts the wait, not just
    the few already on the wire (that would be coordinated omission)."""
    config = config_for(echo_server.url, world, mix=parse_mix("KR=1"), rate=200.0, seconds=3.0, connections=4)
    task = asyncio.create_task(run(config))
    await asyncio.sleep(1.0)
    os.kill(echo_server.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(0.5)
    finally:
        os.kill(echo_server.pid, signal.SIGCONT)
    recorder = await task
    stats = recorder.countries["KR"]
    assert stats.requests == 600
    assert not stats.errors
    latency = stats.latency
    assert latency.get_max_value() >= 400_000  # µs: the first request due in the stall waited it out
    # ~100 requests were due during the stall, ~70 of them waited >= 150 ms; only 4 were in
    # flight, so a generator timing from the actual send would show at most 4 slow ones.
    assert latency.get_value_at_percentile(95) >= 150_000
    assert latency.get_value_at_percentile(50) < 50_000
    assert recorder.unanswered == 0


async def test_constant_rate_is_held(echo_server: Server, world: World) -> None:
    recorder = await run(config_for(echo_server.url, world, rate=300.0, seconds=2.0))
    assert recorder.total_requests() == 600
    assert {cc: s.requests for cc, s in recorder.countries.items()} == {"KR": 300, "DE": 300}
    per_second = sorted(recorder.timeline.items())
    assert all(250 <= tick.requests <= 350 for second, tick in per_second if second < 2)


async def test_region_comes_from_the_routers_header(echo_server: Server, world: World) -> None:
    mix = parse_mix("KR=1,JP=1,US=1")
    recorder = await run(config_for(echo_server.url, world, path="/route", mix=mix, rate=150.0))
    for code in mix.countries:
        block = str(world.country(code).loopback.network_address).split(".")[1]
        assert dict(recorder.countries[code].served_by) == {f"region-{block}": 50}
    assert set(recorder.regions) == {
        f"region-{str(world.country(c).loopback.network_address).split('.')[1]}" for c in mix.countries
    }


async def test_statuses_and_checks_are_errors_by_kind(echo_server: Server, world: World) -> None:
    recorder = await run(config_for(echo_server.url, world, path="/status/503", rate=100.0))
    assert dict(recorder.countries["KR"].errors) == {"status 503": 50}
    assert recorder.countries["KR"].latency.get_total_count() == 50  # answers still have a latency

    chunked = await run(config_for(echo_server.url, world, path="/chunked", rate=100.0, expect_body="block="))
    assert chunked.total_errors() == 0
    assert chunked.total_requests() == 100
    failing = await run(
        config_for(echo_server.url, world, path="/chunked", rate=100.0, expect_body="{country}!")
    )
    assert dict(failing.countries["DE"].errors) == {"check": 50}


async def test_connection_close_answers_are_fine(echo_server: Server, world: World) -> None:
    recorder = await run(config_for(echo_server.url, world, path="/close", rate=100.0))
    assert recorder.total_requests() == 100
    assert recorder.total_errors() == 0


async def test_timeouts_when_the_server_stops_answering(echo_server: Server, world: World) -> None:
    config = config_for(echo_server.url, world, mix=parse_mix("KR=1"), rate=100.0, seconds=1.0, timeout_s=0.3)
    task = asyncio.create_task(run(config))
    await asyncio.sleep(0.2)
    os.kill(echo_server.pid, signal.SIGSTOP)
    try:
        await asyncio.sleep(1.2)
    finally:
        os.kill(echo_server.pid, signal.SIGCONT)
    recorder = await task
    errors = recorder.countries["KR"].errors
    assert errors["timeout"] >= 50
    assert recorder.total_requests() + recorder.unanswered == 100


async def test_connect_errors_when_nobody_listens(world: World) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # bound, never listening: connections are refused
        recorder = await run(config_for(f"http://127.0.0.1:{port}", world, rate=50.0))
    assert recorder.total_requests() == 50
    assert recorder.countries["KR"].errors["connect"] == 25
    assert recorder.countries["KR"].latency.get_total_count() == 0


async def test_closed_loop_keeps_its_users_busy(echo_server: Server, world: World) -> None:
    recorder = await run(config_for(echo_server.url, world, rate=None, concurrency=6, seconds=1.0))
    assert recorder.total_errors() == 0
    assert recorder.total_requests() > 100
    kr, de = recorder.countries["KR"].requests, recorder.countries["DE"].requests
    assert kr == pytest.approx(de, rel=0.3)


async def test_stop_keeps_what_ran(echo_server: Server, world: World) -> None:
    stop = asyncio.Event()
    engine = Engine(config_for(echo_server.url, world, rate=100.0, seconds=30.0), stop=stop)
    task = asyncio.create_task(engine.run())
    await asyncio.sleep(1.0)
    stop.set()
    recorder = await asyncio.wait_for(task, timeout=5.0)
    assert 80 <= recorder.total_requests() <= 130
