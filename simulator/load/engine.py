"""The load engine of one process: drives the country pools and feeds the recorder.

Open loop: a dispatcher walks the plan's intended arrival times and hands each request to
its country's pool at that time, whether or not earlier requests have been answered; a
request that must wait for a free connection keeps its intended time, so queueing shows
in the latency (no coordinated omission). Closed loop: each simulated user sends its next
request as soon as the previous one is answered.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from simulator.load.client import CountryPool, RequestSpec
from simulator.load.headers import AppVersions
from simulator.load.plan import Plan, arrivals
from simulator.load.recorder import Recorder, new_histogram
from simulator.load.timer import PreciseSleeper

HOUSEKEEPING_S = 0.01
TICK_S = 1.0
STOP_DRAIN_S = 1.0
LONG_SLEEP_S = 0.05
MAX_BURST = 32  # requests handed over back to back before the loop gets a turn


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """Everything one engine needs; picklable, so worker processes get it as it is."""

    host: str
    port: int
    host_header: str
    request: RequestSpec
    plan: Plan
    addresses: Mapping[str, tuple[str, ...]]  # country -> client source addresses
    connections: int = 64
    timeout_s: float = 10.0
    seed: int = 1
    expect_body: str | None = None  # "{country}" stands for the client's country code
    worker_index: int = 0
    workers: int = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class Tick:
    """What one engine did since its previous tick (for the live view)."""

    worker: int
    elapsed_s: float
    requests: int
    errors: int
    latency_hdr: str


TickSink = Callable[[Tick], None]


class Engine:
    """Runs one plan once; ``stop`` ends it early (Ctrl-C), keeping what was recorded."""

    def __init__(self, config: EngineConfig, *, stop: asyncio.Event, on_tick: TickSink | None = None) -> None:
        self.config = config
        self.stop = stop
        self.on_tick = on_tick
        self.recorder = Recorder()
        self.pools: dict[str, CountryPool] = {}
        self._t0 = 0.0
        self._interval = new_histogram()
        self._tick_requests = 0
        self._tick_errors = 0
        self._users_target: dict[str, int] = {}
        self._users_active: dict[str, int] = {}
        self._sending = True
        self._sleeper: PreciseSleeper | None = None

    async def run(self) -> Recorder:
        loop = asyncio.get_running_loop()
        plan = self.config.plan
        self._sleeper = PreciseSleeper(loop)
        app_versions = AppVersions()  # one per process: every pool names a version by one string
        for country in plan.countries():
            self.recorder.ensure_country(country)
            self.pools[country] = CountryPool(
                country=country,
                local_addresses=self.config.addresses[country],
                host=self.config.host,
                port=self.config.port,
                payload=self.config.request.encode(self.config.host_header),
                method=self.config.request.method,
                max_connections=self._pool_size(country),
                timeout_s=self.config.timeout_s,
                sink=self._sink,
                expect=None
                if self.config.expect_body is None
                else self.config.expect_body.replace("{country}", country).encode(),
                app_versions=app_versions,
            )
        try:
            if plan.open_loop:
                await self._warm()
            self._t0 = loop.time()
            self.recorder.started_ts = time.time()  # the same instant on the wall clock, for events
            async with asyncio.TaskGroup() as group:
                housekeeping = group.create_task(self._housekeeping(), name="load-housekeeping")
                await (self._open_loop() if plan.open_loop else self._closed_loop())
                self._sending = False
                await self._drain()
                housekeeping.cancel()
        finally:
            self._sending = False
            self._sleeper.close()
            self.recorder.unanswered += sum(pool.close() for pool in self.pools.values())
            self._emit_tick(loop.time())
        return self.recorder

    def _pool_size(self, country: str) -> int:
        plan = self.config.plan
        if plan.open_loop:
            share = max(p.mix.shares().get(country, 0.0) for p in plan.phases)
            return max(1, math.ceil(self.config.connections * share))
        return max(p.mix.split(p.concurrency or 0).get(country, 0) for p in plan.phases)

    async def _warm(self) -> None:
        connecting = [task for pool in self.pools.values() for task in pool.warm(pool.max_connections)]
        if connecting:  # failures are the run's to report: warming is only a head start
            await asyncio.wait(connecting, timeout=self.config.timeout_s)

    def _sink(  # noqa: PLR0917 - once per request: positional calls are the cheap ones
        self,
        country: str,
        intended: float,
        done: float,
        status: int,
        region: str,
        kind: str | None,
        version: str,
        cache: str = "",
    ) -> None:
        latency_us = int((done - intended) * 1_000_000)
        self.recorder.record(country, latency_us, int(done - self._t0), status, region, kind, version, cache)
        self._tick_requests += 1
        if kind is not None or status >= 400:
            self._tick_errors += 1
        if status:
            self._interval.record_value(max(1, latency_us))
        if self._users_target:
            self._next_user_request(country, self.pools[country].loop.time())

    def _next_user_request(self, country: str, now: float) -> None:
        if self._sending and self._users_active[country] <= self._users_target.get(country, 0):
            self.pools[country].submit(now)
        else:
            self._users_active[country] -= 1

    async def _sleep_until(self, when: float) -> None:
        loop = asyncio.get_running_loop()
        assert self._sleeper is not None
        while (delay := when - loop.time()) > 0 and not self.stop.is_set():
            if delay > LONG_SLEEP_S:
                try:
                    async with asyncio.timeout(min(delay, 1.0)):
                        await self.stop.wait()
                except TimeoutError:
                    pass
            else:
                await self._sleeper.until(when)

    async def _open_loop(self) -> None:
        loop = asyncio.get_running_loop()
        t0, pools, lag = self._t0, self.pools, self.recorder.send_lag
        offset = self.config.worker_index / self.config.workers
        burst = 0
        for at, country in arrivals(self.config.plan, seed=self.config.seed, offset=offset):
            due = t0 + at
            if due > loop.time():
                burst = 0
                await self._sleep_until(due)
                if self.stop.is_set():
                    return
            elif (burst := burst + 1) >= MAX_BURST:
                # behind schedule: still let answers in between sends, or lag feeds on itself
                burst = 0
                await asyncio.sleep(0)
                if self.stop.is_set():
                    return
            handed_at = loop.time()
            pools[country].submit(due)
            lag.record_value(max(1, int((handed_at - due) * 1_000_000)))
        await self._sleep_until(t0 + self.config.plan.duration_s)

    async def _closed_loop(self) -> None:
        loop = asyncio.get_running_loop()
        start = self._t0
        self._users_active = dict.fromkeys(self.pools, 0)
        for phase in self.config.plan.phases:
            self._users_target = phase.mix.split(phase.concurrency or 0)
            now = loop.time()
            for country, users in self._users_target.items():
                for _ in range(users - self._users_active[country]):
                    self._users_active[country] += 1
                    self.pools[country].submit(now)
            start += phase.duration_s
            await self._sleep_until(start)
            if self.stop.is_set():
                return

    async def _drain(self) -> None:
        """Give answers in flight a chance to arrive: up to the timeout, or briefly after Ctrl-C."""
        loop = asyncio.get_running_loop()
        patience = STOP_DRAIN_S if self.stop.is_set() else self.config.timeout_s
        deadline = loop.time() + patience
        while any(p.in_flight() for p in self.pools.values()) and loop.time() < deadline:
            if self.stop.is_set():
                deadline = min(deadline, loop.time() + STOP_DRAIN_S)
            await asyncio.sleep(HOUSEKEEPING_S)

    async def _housekeeping(self) -> None:
        loop = asyncio.get_running_loop()
        next_tick = self._t0 + TICK_S
        while True:
            await asyncio.sleep(HOUSEKEEPING_S)
            now = loop.time()
            for pool in self.pools.values():
                pool.sweep(now)
            if now >= next_tick:
                self._emit_tick(now)
                next_tick += TICK_S

    def _emit_tick(self, now: float) -> None:
        if self.on_tick is None:
            return
        tick = Tick(
            worker=self.config.worker_index,
            elapsed_s=now - self._t0,
            requests=self._tick_requests,
            errors=self._tick_errors,
            latency_hdr=self._interval.encode().decode("ascii"),
        )
        self._interval.reset()
        self._tick_requests = self._tick_errors = 0
        self.on_tick(tick)
