"""PreciseSleeper: sub-millisecond sleeps that end at their moment, and that sleep."""

from __future__ import annotations

import asyncio
import sys
import time

import pytest

from simulator.load import timer
from simulator.load.timer import PreciseSleeper

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="timerfd is Linux's")


@pytest.mark.parametrize("use_timerfd", [True, False])
async def test_never_returns_before_its_moment(use_timerfd: bool) -> None:
    loop = asyncio.get_running_loop()
    sleeper = PreciseSleeper(loop, use_timerfd=use_timerfd)
    try:
        for gap in (0.0003, 0.0007, 0.0015, 0.004, -0.001):
            when = loop.time() + gap
            await sleeper.until(when)
            assert loop.time() >= when
    finally:
        sleeper.close()


@linux_only
async def test_short_sleeps_leave_the_cpu_idle() -> None:
    """500 sleeps of 2 ms each: a spinning wait would use the CPU for all of it."""
    loop = asyncio.get_running_loop()
    sleeper = PreciseSleeper(loop)
    assert sleeper.precise
    try:
        cpu0, wall0 = time.process_time(), loop.time()
        when = wall0
        for _ in range(500):
            when += 0.002
            await sleeper.until(when)
        cpu, wall = time.process_time() - cpu0, loop.time() - wall0
    finally:
        sleeper.close()
    assert wall >= 1.0
    assert cpu < 0.6 * wall, f"{cpu:.2f}s of CPU in {wall:.2f}s: the sleeper spun"


async def test_the_fallback_spins_only_the_last_stretch() -> None:
    loop = asyncio.get_running_loop()
    sleeper = PreciseSleeper(loop, use_timerfd=False)
    assert not sleeper.precise
    try:
        cpu0 = time.process_time()
        await sleeper.until(loop.time() + 0.2)
        assert time.process_time() - cpu0 < 0.1  # 2 ms of yielding, not 200
    finally:
        sleeper.close()


@linux_only
async def test_the_early_wake_margin_is_learnt_and_bounded() -> None:
    loop = asyncio.get_running_loop()
    sleeper = PreciseSleeper(loop)
    try:
        assert sleeper.margin_s == timer.FIRST_MARGIN_S
        when = loop.time()
        for _ in range(96):
            when += 0.001
            await sleeper.until(when)
        assert sleeper.margin_s != timer.FIRST_MARGIN_S
        assert timer.MIN_MARGIN_S <= sleeper.margin_s <= timer.SPIN_S
    finally:
        sleeper.close()


@linux_only
async def test_a_cancelled_sleep_leaves_the_sleeper_usable() -> None:
    loop = asyncio.get_running_loop()
    sleeper = PreciseSleeper(loop)
    try:
        waiting = loop.create_task(sleeper.until(loop.time() + 0.05))
        await asyncio.sleep(0.005)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting
        when = loop.time() + 0.003
        await sleeper.until(when)  # the timer re-arms; the cancelled one's expiry is harmless
        assert loop.time() >= when
        await asyncio.sleep(0.06)
    finally:
        sleeper.close()
