"""One timer for many deadlines: expiries fire late by at most the resolution, never early."""

from __future__ import annotations

import asyncio

import pytest

from router.deadlines import Deadlines


async def test_an_entry_expires_after_its_timeout_and_not_before() -> None:
    deadlines = Deadlines(resolution_s=0.02)
    loop = asyncio.get_running_loop()
    fired: list[float] = []
    started = loop.time()
    deadlines.add("a", 0.1, lambda: fired.append(loop.time() - started))
    await asyncio.sleep(0.08)
    assert fired == []
    await asyncio.sleep(0.1)
    assert len(fired) == 1
    assert 0.1 <= fired[0] < 0.18
    assert len(deadlines) == 0


async def test_a_discarded_entry_never_fires_and_the_timer_stops_when_empty() -> None:
    deadlines = Deadlines(resolution_s=0.01)
    fired: list[str] = []
    deadlines.add("a", 0.02, lambda: fired.append("a"))
    deadlines.add("b", 0.02, lambda: fired.append("b"))
    deadlines.discard("a")
    deadlines.discard("never added")
    await asyncio.sleep(0.06)
    assert fired == ["b"]
    assert deadlines._sweep is None  # nothing left: no timer keeps the loop busy


async def test_a_failing_callback_does_not_stop_later_expiries() -> None:
    deadlines = Deadlines(resolution_s=0.01)
    loop = asyncio.get_running_loop()
    errors: list[BaseException] = []
    loop.set_exception_handler(lambda _, context: errors.append(context["exception"]))

    def boom() -> None:
        raise RuntimeError("boom")

    fired: list[str] = []
    deadlines.add("first", 0.01, boom)
    deadlines.add("second", 0.05, lambda: fired.append("second"))
    await asyncio.sleep(0.1)
    assert fired == ["second"]
    assert [str(error) for error in errors] == ["boom"]


def test_resolution_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Deadlines(resolution_s=0)
