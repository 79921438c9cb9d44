"""Starts the processes of a local world, waits until each is ready, and stops them all.

Each child is started in its own session (so a Ctrl-C in the terminal reaches only the
supervisor, which then stops children in reverse start order: listeners in front first)
and told to arm a parent-death signal (``EDGECDN_PARENT_PID``), so even a supervisor
killed with SIGKILL leaves no process behind. A child reports readiness by writing its
ready file (runtime.ready).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from runtime.process import PARENT_PID_ENV
from runtime.ready import ReadyReport, read_ready_file
from simulator.errors import ChildFailedError

logger = logging.getLogger(__name__)

READY_POLL_SECONDS = 0.02
LOG_TAIL_LINES = 15


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """How to start one process of the world. ``--ready-file`` is appended by the supervisor."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 30.0


@dataclass(frozen=True, slots=True, kw_only=True)
class RunningChild:
    """A started, ready child."""

    spec: ChildSpec
    process: asyncio.subprocess.Process
    report: ReadyReport
    log_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid


class Supervisor:
    """Owns the world's child processes; use as an async context manager."""

    def __init__(self, run_dir: Path) -> None:
        self._run_dir = run_dir
        # Children in start order, grouped by the call that started them; stopped group by
        # group in reverse (the router before the nodes before the control plane).
        self._groups: list[list[RunningChild]] = []

    @property
    def children(self) -> tuple[RunningChild, ...]:
        return tuple(child for group in self._groups for child in group)

    async def __aenter__(self) -> Supervisor:
        (self._run_dir / "logs").mkdir(parents=True, exist_ok=True)
        (self._run_dir / "ready").mkdir(parents=True, exist_ok=True)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop_all()

    async def start(self, spec: ChildSpec) -> RunningChild:
        """Start ``spec`` and return once it has written its ready report."""
        (child,) = await self.start_group([spec])
        return child

    async def start_group(self, specs: Sequence[ChildSpec]) -> list[RunningChild]:
        """Start ``specs`` concurrently; all ready, or none left running and the first error raised."""
        results = await asyncio.gather(*(self._start_one(spec) for spec in specs), return_exceptions=True)
        started = [result for result in results if isinstance(result, RunningChild)]
        failures = [result for result in results if isinstance(result, BaseException)]
        if failures:
            await asyncio.gather(*(_terminate(child.process, timeout_s=2.0) for child in started))
            raise failures[0]
        self._groups.append(started)
        return started

    async def _start_one(self, spec: ChildSpec) -> RunningChild:
        slug = spec.name.replace(" ", "-")
        ready_path = self._run_dir / "ready" / f"{slug}.json"
        ready_path.unlink(missing_ok=True)
        log_path = self._run_dir / "logs" / f"{slug}.log"
        with log_path.open("wb") as log:
            process = await asyncio.create_subprocess_exec(
                *spec.argv,
                "--ready-file",
                str(ready_path),
                stdin=asyncio.subprocess.DEVNULL,
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
                # The child arms its own parent-death signal (runtime.process.die_with_parent).
                env={**os.environ, **spec.env, PARENT_PID_ENV: str(os.getpid())},
                start_new_session=True,
            )
        try:
            report = await self._wait_ready(spec, process, ready_path, log_path)
        except BaseException:
            await _terminate(process, timeout_s=2.0)
            raise
        child = RunningChild(spec=spec, process=process, report=report, log_path=log_path)
        logger.info("%s ready (pid %d): %s", spec.name, process.pid, dict(report.addresses))
        return child

    async def _wait_ready(
        self, spec: ChildSpec, process: asyncio.subprocess.Process, ready_path: Path, log_path: Path
    ) -> ReadyReport:
        deadline = time.monotonic() + spec.ready_timeout_s
        while True:
            if process.returncode is not None:
                raise ChildFailedError(
                    name=spec.name,
                    reason=f"exited with status {process.returncode} before it was ready",
                    log_tail=tail(log_path),
                )
            report = read_ready_file(ready_path)
            if report is not None:
                return report
            if time.monotonic() > deadline:
                raise ChildFailedError(
                    name=spec.name,
                    reason=f"was not ready within {spec.ready_timeout_s:g}s",
                    log_tail=tail(log_path),
                )
            await asyncio.sleep(READY_POLL_SECONDS)

    async def wait_any_exit(self) -> RunningChild:
        """Return the first child that exits (a world with a dead process is broken)."""
        waiters = {
            asyncio.create_task(c.process.wait(), name=f"wait-{c.spec.name}"): c for c in self.children
        }
        try:
            done, _ = await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in waiters:
                task.cancel()
        return waiters[next(iter(done))]

    async def stop_all(self, timeout_s: float = 4.0) -> None:
        """Stop every child, newest group first, each group at once: SIGTERM, then SIGKILL.

        ``timeout_s`` is the budget for the whole world, not per process.
        """
        deadline = time.monotonic() + timeout_s
        while self._groups:
            group = self._groups.pop()
            budget = max(0.1, (deadline - time.monotonic()) / (len(self._groups) + 1))
            await asyncio.gather(*(_terminate(child.process, timeout_s=budget) for child in group))


async def _terminate(process: asyncio.subprocess.Process, *, timeout_s: float) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), timeout_s)
        except TimeoutError:
            logger.warning("pid %d ignored SIGTERM for %.1fs; killing it", process.pid, timeout_s)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file ('' when unreadable)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.splitlines()[-lines:])
