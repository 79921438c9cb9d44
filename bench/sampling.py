"""In-process timing for the benchmarks: warm up, sample with the collector off, and
interleave cases in rounds so that a burst of stolen CPU spoils every case alike."""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass


def percentiles(samples: list[float]) -> tuple[float, float]:
    """p50 and p99 in microseconds."""
    ordered = sorted(samples)
    return statistics.median(ordered) * 1e6, ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1e6


def _warm_up(call: Callable[[], object], requests: int) -> None:
    for _ in range(min(500, requests)):
        call()


def _sample(call: Callable[[], object], count: int) -> list[float]:
    """``count`` timings of ``call`` in seconds, with the collector off as a server would rarely hit it."""
    samples = []
    gc.disable()
    try:
        for _ in range(count):
            start = time.perf_counter()
            call()
            samples.append(time.perf_counter() - start)
    finally:
        gc.enable()
    return samples


@dataclass(frozen=True, slots=True)
class Timing:
    """A case's p50 (the median of its rounds' p50s), pooled p99, and its rounds' p50 range."""

    p50: float
    p99: float
    low: float
    high: float


def timed(call: Callable[[], object], requests: int) -> Timing:
    """p50/p99 of ``call`` in one run after a warm-up (one round: no range)."""
    _warm_up(call, requests)
    p50, p99 = percentiles(_sample(call, requests))
    return Timing(p50=p50, p99=p99, low=p50, high=p50)


def timed_rounds(cases: dict[str, Callable[[], object]], requests: int, rounds: int) -> dict[str, Timing]:
    """Every case ``requests`` times, interleaved: each round runs each case in turn.

    This VM's host takes CPU away in bursts of seconds; run one case after another and a
    burst lands on one of them. Interleaved, a burst spoils a round of every case alike,
    and the median of the rounds' p50s leaves it out.
    """
    per_round = max(1, requests // rounds)
    samples: dict[str, list[float]] = {name: [] for name in cases}
    round_p50s: dict[str, list[float]] = {name: [] for name in cases}
    for call in cases.values():
        _warm_up(call, requests)
    for _ in range(rounds):
        for name, call in cases.items():
            taken = _sample(call, per_round)
            samples[name] += taken
            round_p50s[name].append(statistics.median(taken) * 1e6)
    return {
        name: Timing(
            p50=statistics.median(round_p50s[name]),
            p99=percentiles(samples[name])[1],
            low=min(round_p50s[name]),
            high=max(round_p50s[name]),
        )
        for name in cases
    }
