"""Run the engine in one or several processes and merge what they recorded, exactly.

Worker i of N runs 1/N of the rate with its arrivals shifted by i/N of a gap (so the
merged stream is as even as one process's), or its part of the users in closed loop, and
a seed of its own. Workers send live ticks and, at the end, their recorder in wire form
(compressed HDR histograms) over a queue; the parent adds the histograms together.

Ctrl-C: each worker turns SIGINT into its engine's stop event, drains briefly and still
returns its results; the parent forwards SIGINT to its workers (in case the signal was
sent to it alone) and merges whatever came back.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import multiprocessing
import os
import queue
import signal
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from types import FrameType
from typing import Any

from simulator.load.engine import Engine, EngineConfig, Tick, TickSink
from simulator.load.errors import BadInputError, WorkerFailedError
from simulator.load.plan import Phase, Plan
from simulator.load.recorder import Recorder

RESULT_WAIT_S = 0.2
WORKER_GRACE_S = 30.0


@dataclasses.dataclass(frozen=True, slots=True, kw_only=True)
class RunResult:
    """The merged recorder, and whether the run was cut short."""

    recorder: Recorder
    interrupted: bool
    workers_lost: int = 0


def worker_config(config: EngineConfig, index: int, workers: int) -> EngineConfig:
    """The part of ``config`` that worker ``index`` of ``workers`` runs."""
    if workers == 1:
        return config
    phases: list[Phase] = []
    for phase in config.plan.phases:
        if phase.concurrency is None:
            phases.append(phase.scaled(1 / workers))
            continue
        users = phase.concurrency // workers + (1 if index < phase.concurrency % workers else 0)
        if users < len(phase.mix.weights):
            raise BadInputError(
                field="--workers",
                reason=f"phase {phase.name!r} has {phase.concurrency} users, too few for {workers} workers "
                f"each simulating {len(phase.mix.weights)} countries",
            )
        phases.append(dataclasses.replace(phase, concurrency=users))
    plan = Plan(phases=tuple(phases), arrival=config.plan.arrival, meta=config.plan.meta)
    return dataclasses.replace(
        config,
        plan=plan,
        connections=max(1, config.connections // workers),
        seed=config.seed + index,
        worker_index=index,
        workers=workers,
    )


async def run_engine(config: EngineConfig, *, stop: asyncio.Event, on_tick: TickSink | None) -> Recorder:
    """One engine on the running loop, with SIGINT (Ctrl-C) turned into ``stop``."""
    loop = asyncio.get_running_loop()
    with contextlib.suppress(RuntimeError, ValueError):  # not the main thread: the caller owns stopping
        loop.add_signal_handler(signal.SIGINT, stop.set)
    gc.collect()
    gc.freeze()  # the long-lived setup need not be walked by every collection during the run
    try:
        return await Engine(config, stop=stop, on_tick=on_tick).run()
    finally:
        gc.unfreeze()
        with contextlib.suppress(RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGINT)


def run_in_process(config: EngineConfig, on_tick: TickSink | None) -> RunResult:
    async def main() -> RunResult:
        stop = asyncio.Event()
        recorder = await run_engine(config, stop=stop, on_tick=on_tick)
        return RunResult(recorder=recorder, interrupted=stop.is_set())

    return asyncio.run(main())


def _worker_main(config: EngineConfig, results: multiprocessing.Queue[Any], stopping: Any) -> None:
    async def main() -> None:
        stop = asyncio.Event()
        # Started with SIGINT blocked and ignored (run_workers): take it over, then let it in.
        # A Ctrl-C that came while this process was still importing is pending, or was
        # recorded by the parent in ``stopping`` before it forwarded it: either way, it stops.
        asyncio.get_running_loop().add_signal_handler(signal.SIGINT, stop.set)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        if stopping.is_set():
            stop.set()
        recorder = await run_engine(config, stop=stop, on_tick=lambda tick: results.put(("tick", tick)))
        results.put(("done", config.worker_index, recorder.to_wire(), stop.is_set()))

    try:
        asyncio.run(main())
    except Exception as exc:  # noqa: BLE001 - reported to the parent, which names the worker
        results.put(("error", config.worker_index, f"{type(exc).__name__}: {exc}"))


def run_workers(config: EngineConfig, workers: int, on_tick: TickSink | None = None) -> RunResult:
    """Run ``config`` in ``workers`` processes (1: in this process) and merge the results."""
    if workers == 1:
        return run_in_process(config, on_tick)
    parts = [worker_config(config, i, workers) for i in range(workers)]
    context = multiprocessing.get_context("spawn")
    results: multiprocessing.Queue[Any] = context.Queue()
    stopping = context.Event()
    processes = [
        context.Process(
            target=_worker_main, args=(part, results, stopping), name=f"edgecdn-load-{i}", daemon=True
        )
        for i, part in enumerate(parts)
    ]
    interrupted = False

    def forward(signum: int, _frame: FrameType | None) -> None:
        nonlocal interrupted
        interrupted = True
        stopping.set()  # for a worker that has not taken SIGINT over yet
        for process in processes:
            if process.is_alive():
                _signal(process, signum)

    previous = signal.signal(signal.SIGINT, forward)
    try:
        _start_shielded(processes, forward)
        merged, finished, stopped = _collect(processes, results, on_tick)
    except BaseException:
        for process in processes:  # one worker failed: the others' results are moot
            if process.is_alive():
                process.kill()
        raise
    finally:
        signal.signal(signal.SIGINT, previous)
        for process in processes:
            process.join(timeout=WORKER_GRACE_S)
            if process.is_alive():
                process.kill()
    lost = workers - len(finished)
    if lost and not (interrupted or stopped):
        missing = sorted(set(range(workers)) - finished)
        raise WorkerFailedError(index=missing[0], reason="exited without results")
    return RunResult(recorder=merged, interrupted=interrupted or stopped, workers_lost=lost)


def _start_shielded(
    processes: Sequence[BaseProcess], handler: Callable[[int, FrameType | None], None]
) -> None:
    """Start the workers with SIGINT ignored and blocked, which they inherit through exec: a
    Ctrl-C while a worker imports would otherwise end it with a KeyboardInterrupt traceback.
    Linux keeps a blocked signal pending even while it is ignored, so a Ctrl-C meanwhile
    reaches ``handler`` here once it is unblocked, and the worker once it takes SIGINT over."""
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        for process in processes:
            process.start()
    finally:
        signal.signal(signal.SIGINT, handler)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})


def _signal(process: BaseProcess, signum: int) -> None:
    if process.pid is not None:
        with contextlib.suppress(ProcessLookupError):
            os.kill(process.pid, signum)


def _collect(
    processes: Sequence[BaseProcess],
    results: multiprocessing.Queue[Any],
    on_tick: Callable[[Tick], None] | None,
) -> tuple[Recorder, set[int], bool]:
    merged = Recorder()
    finished: set[int] = set()
    stopped = False
    while len(finished) < len(processes):
        try:
            message = results.get(timeout=RESULT_WAIT_S)
        except queue.Empty:
            if not any(p.is_alive() for p in processes):
                # a last message may still be in flight; one more look, then give up
                try:
                    message = results.get(timeout=1.0)
                except queue.Empty:
                    break
            else:
                continue
        kind = message[0]
        if kind == "tick" and on_tick is not None:
            on_tick(message[1])
        elif kind == "done":
            merged.merge(message[2])
            finished.add(message[1])
            stopped = stopped or bool(message[3])
        elif kind == "error":
            raise WorkerFailedError(index=message[1], reason=message[2])
    return merged, finished, stopped
