"""Starts the processes of a local world, keeps them running, and stops them all.

Each child is started in its own session (so a Ctrl-C in the terminal reaches only the
supervisor, which then stops children in reverse start order: listeners in front first)
and told to arm a parent-death signal (``EDGECDN_PARENT_PID``), so even a supervisor
killed with SIGKILL leaves no process behind. A child reports readiness by writing its
ready file (runtime.ready).

With a restart policy (``edgecdn up`` gives one; test harnesses that kill a child on
purpose give none), a child that exits is started again after a back-off
(simulator.restarts), on the addresses it first reported: its spec's ``pin`` turns the
first start's ``--port 0`` into the port it got, so nodes, the router and clients find
it again where they left it. Every exit and restart is written to the world's event log
(runtime.events) and reported through ``on_change``, which ``edgecdn up`` uses to keep
world.json current.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Literal

from runtime.events import record_event
from runtime.process import PARENT_PID_ENV
from runtime.ready import ReadyReport, read_ready_file
from simulator.errors import ChildFailedError
from simulator.restarts import RestartPolicy, describe_exit

logger = logging.getLogger(__name__)

READY_POLL_SECONDS = 0.02
LOG_TAIL_LINES = 15

ChildState = Literal["up", "restarting", "stopped"]
PinArgv = Callable[[Sequence[str], ReadyReport], Sequence[str]]
"""Given a child's argv and its first ready report, the argv that starts it on the same addresses."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ChildSpec:
    """How to start one process of the world. ``--ready-file`` is appended by the supervisor."""

    name: str
    argv: Sequence[str]
    env: Mapping[str, str] = field(default_factory=dict)
    ready_timeout_s: float = 30.0
    pin: PinArgv | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ExitRecord:
    """How a child's last run ended."""

    returncode: int | None
    at: float
    ran_for_s: float
    reason: str


class RunningChild:
    """One child of the world and what the supervisor knows of it; the supervisor alone changes it."""

    def __init__(
        self, *, spec: ChildSpec, process: asyncio.subprocess.Process, report: ReadyReport, log_path: Path
    ) -> None:
        # From the first ready report on, the child is always started on the same addresses.
        self.spec = replace(spec, argv=tuple(spec.pin(spec.argv, report)), pin=None) if spec.pin else spec
        self.process = process
        self.report = report
        self.log_path = log_path
        self.state: ChildState = "up"
        self.since = time.time()
        self.started_monotonic = time.monotonic()
        self.restarts = 0
        self.crashes_in_a_row = 0
        self.last_exit: ExitRecord | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def name(self) -> str:
        return self.spec.name


class Supervisor:
    """Owns the world's child processes; use as an async context manager."""

    def __init__(
        self,
        run_dir: Path,
        *,
        policy: RestartPolicy | None = None,
        events: Path | None = None,
        on_change: Callable[[], None] | None = None,
    ) -> None:
        self._run_dir = run_dir
        self._policy = policy
        self._events = events
        self._on_change = on_change
        # Children in start order, grouped by the call that started them; stopped group by
        # group in reverse (the router before the nodes before the control plane).
        self._groups: list[list[RunningChild]] = []
        self._watchers: set[asyncio.Task[None]] = set()
        self._stopping = False

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
        """Start ``spec`` and return once it has written its ready report; from then on it is kept running."""
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
        if self._policy is None:
            return started
        for child in started:
            watcher = self._keep_running(child, self._policy)
            task = asyncio.create_task(watcher, name=f"supervise-{child.name}")
            self._watchers.add(task)
            task.add_done_callback(self._watchers.discard)
        return started

    async def _start_one(self, spec: ChildSpec) -> RunningChild:
        process, report, log_path = await self._launch(spec, append_log=False)
        logger.info("%s ready (pid %d): %s", spec.name, process.pid, dict(report.addresses))
        return RunningChild(spec=spec, process=process, report=report, log_path=log_path)

    async def _launch(
        self, spec: ChildSpec, *, append_log: bool
    ) -> tuple[asyncio.subprocess.Process, ReadyReport, Path]:
        slug = spec.name.replace(" ", "-")
        ready_path = self._run_dir / "ready" / f"{slug}.json"
        ready_path.unlink(missing_ok=True)
        log_path = self._run_dir / "logs" / f"{slug}.log"
        with log_path.open("ab" if append_log else "wb") as log:
            if append_log:
                log.write(f"\n--- edgecdn up: restarting {spec.name} at {time.ctime()} ---\n".encode())
                log.flush()
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
        return process, report, log_path

    async def _wait_ready(
        self, spec: ChildSpec, process: asyncio.subprocess.Process, ready_path: Path, log_path: Path
    ) -> ReadyReport:
        deadline = time.monotonic() + spec.ready_timeout_s
        while True:
            if process.returncode is not None:
                raise ChildFailedError(
                    name=spec.name,
                    reason=f"{describe_exit(process.returncode)} before it was ready",
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

    async def _keep_running(self, child: RunningChild, policy: RestartPolicy) -> None:
        """Wait for ``child`` to exit and start it again, with back-off, until the world stops."""
        while True:
            returncode = await child.process.wait()
            if self._stopping:
                return
            ran_for_s = time.monotonic() - child.started_monotonic
            child.crashes_in_a_row = policy.crashes_in_a_row(child.crashes_in_a_row, ran_for_s)
            delay = policy.delay(child.crashes_in_a_row)
            self._exited(child, returncode, ran_for_s, describe_exit(returncode), delay)
            while True:
                await asyncio.sleep(delay)
                try:
                    process, report, _ = await self._launch(child.spec, append_log=True)
                except ChildFailedError as exc:
                    child.crashes_in_a_row += 1
                    delay = policy.delay(child.crashes_in_a_row)
                    self._exited(child, None, 0.0, f"failed to restart: {exc.reason}", delay)
                    continue
                break
            self._restarted(child, process, report)

    def _exited(
        self, child: RunningChild, returncode: int | None, ran_for_s: float, reason: str, delay: float
    ) -> None:
        now = time.time()
        child.last_exit = ExitRecord(returncode=returncode, at=now, ran_for_s=ran_for_s, reason=reason)
        child.state = "restarting"
        child.since = child.last_exit.at
        logger.warning("%s (pid %d) %s; restarting in %.1fs", child.name, child.pid, reason, delay)
        self._record(
            "exit",
            child,
            f"{child.name} (pid {child.pid}) {reason}; restarting in {delay:.1f}s",
            {
                "pid": child.pid,
                "returncode": returncode,
                "ran_for_s": round(ran_for_s, 3),
                "restart_in_s": delay,
            },
        )

    def _restarted(
        self, child: RunningChild, process: asyncio.subprocess.Process, report: ReadyReport
    ) -> None:
        down_for_s = time.time() - child.since
        child.process, child.report = process, report
        child.state = "up"
        child.restarts += 1
        child.since = time.time()
        child.started_monotonic = time.monotonic()
        logger.warning("%s restarted (pid %d) after %.1fs down", child.name, process.pid, down_for_s)
        self._record(
            "restart",
            child,
            f"{child.name} restarted (pid {process.pid}, restart {child.restarts}) after {down_for_s:.1f}s",
            {"pid": process.pid, "restarts": child.restarts, "down_for_s": round(down_for_s, 3)},
        )

    def _record(self, kind: str, child: RunningChild, message: str, details: Mapping[str, object]) -> None:
        if self._events is not None:
            try:
                record_event(
                    self._events,
                    source="supervisor",
                    kind=kind,
                    target=child.name,
                    message=message,
                    details=details,
                )
            except OSError as exc:  # the world runs on without its event log
                logger.warning("cannot write the event log %s: %s", self._events, exc)
        if self._on_change is not None:
            self._on_change()

    async def stop_all(self, timeout_s: float = 4.0) -> None:
        """Stop every child, newest group first, each group at once: SIGTERM, then SIGKILL.

        ``timeout_s`` is the budget for the whole world, not per process.
        """
        self._stopping = True
        for task in list(self._watchers):
            task.cancel()
        for task in list(self._watchers):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        deadline = time.monotonic() + timeout_s
        while self._groups:
            group = self._groups.pop()
            budget = max(0.1, (deadline - time.monotonic()) / (len(self._groups) + 1))
            await asyncio.gather(*(_terminate(child.process, timeout_s=budget) for child in group))
            for child in group:
                child.state = "stopped"


async def _terminate(process: asyncio.subprocess.Process, *, timeout_s: float) -> None:
    if process.returncode is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
            # A frozen child (edgecdn chaos freeze) only sees the SIGTERM once it runs again.
            process.send_signal(signal.SIGCONT)
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
