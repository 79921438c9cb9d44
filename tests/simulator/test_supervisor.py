"""The world's supervisor with real child processes: restarts on the same port with back-off,
events and state changes reported, a crash loop backed off, a frozen child still stopped.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path

import pytest

from runtime.events import read_events
from runtime.ready import ReadyReport
from simulator.layout import port_of, with_flag
from simulator.restarts import RestartPolicy
from simulator.supervisor import ChildSpec, RunningChild, Supervisor

CHILD = Path(__file__).with_name("child_server.py")
FAST = RestartPolicy(initial_s=0.1, maximum_s=0.4, healthy_after_s=60)


def pin(argv: Sequence[str], report: ReadyReport) -> Sequence[str]:
    return with_flag(argv, "--port", str(port_of(report.addresses["tcp"])))


def child_spec(name: str = "child", *extra: str) -> ChildSpec:
    return ChildSpec(
        name=name, argv=(sys.executable, str(CHILD), "--port", "0", *extra), pin=pin, ready_timeout_s=10
    )


async def ask(address: str) -> int:
    host, _, port = address.rpartition(":")
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port)), 2)
    try:
        return int(await asyncio.wait_for(reader.readline(), 2))
    finally:
        writer.close()


class Changes:
    def __init__(self) -> None:
        self.count = 0
        self.event = asyncio.Event()

    def __call__(self) -> None:
        self.count += 1
        self.event.set()


@pytest.fixture
async def restarting(tmp_path: Path) -> AsyncIterator[tuple[Supervisor, Changes, Path]]:
    changes = Changes()
    events = tmp_path / "events.jsonl"
    async with Supervisor(tmp_path / "run", policy=FAST, events=events, on_change=changes) as supervisor:
        yield supervisor, changes, events


def is_up(child: RunningChild) -> bool:
    return child.state == "up"


async def wait_for(predicate: object, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.02)


async def test_a_killed_child_comes_back_on_the_same_port(
    restarting: tuple[Supervisor, Changes, Path],
) -> None:
    supervisor, changes, events = restarting
    child = await supervisor.start(child_spec())
    address = child.report.addresses["tcp"]
    first_pid = await ask(address)
    os.kill(first_pid, signal.SIGKILL)
    await wait_for(lambda: child.restarts == 1 and child.state == "up")
    assert await ask(address) == child.pid != first_pid
    assert child.report.addresses["tcp"] == address
    assert child.last_exit is not None
    assert child.last_exit.reason == "killed by SIGKILL"
    assert changes.count == 2  # exited, restarted
    kinds = [(event.kind, event.target, event.source) for event in read_events(events)]
    assert kinds == [("exit", "child", "supervisor"), ("restart", "child", "supervisor")]


async def test_a_child_that_exits_by_itself_is_restarted_too(
    restarting: tuple[Supervisor, Changes, Path],
) -> None:
    supervisor, _, _ = restarting
    child = await supervisor.start(child_spec())
    os.kill(child.pid, signal.SIGTERM)
    await wait_for(lambda: child.restarts == 1 and child.state == "up")
    assert child.last_exit is not None
    assert child.last_exit.reason == "killed by SIGTERM"


async def test_a_crash_loop_backs_off_and_recovers(
    restarting: tuple[Supervisor, Changes, Path], tmp_path: Path
) -> None:
    supervisor, _, events = restarting
    broken = tmp_path / "broken"
    child = await supervisor.start(child_spec("looping", "--fail-if-exists", str(broken)))
    broken.touch()
    os.kill(child.pid, signal.SIGKILL)
    await wait_for(lambda: child.crashes_in_a_row >= 4)
    assert child.state == "restarting"
    assert child.last_exit is not None
    assert "failed to restart: exited with status 3 before it was ready" in child.last_exit.reason
    delays = [event.details["restart_in_s"] for event in read_events(events) if event.kind == "exit"]
    assert delays[:4] == [0.1, 0.2, 0.4, 0.4]  # doubling, capped at the policy's maximum
    broken.unlink()
    await wait_for(lambda: is_up(child))
    assert await ask(child.report.addresses["tcp"]) == child.pid


async def test_without_a_policy_a_dead_child_stays_dead(supervisor: Supervisor) -> None:
    child = await supervisor.start(child_spec())
    os.kill(child.pid, signal.SIGKILL)
    await child.process.wait()
    await asyncio.sleep(0.3)
    assert child.restarts == 0
    assert child.process.returncode == -signal.SIGKILL


async def test_stop_all_stops_a_frozen_child_and_a_restarting_one(
    restarting: tuple[Supervisor, Changes, Path],
) -> None:
    supervisor, _, _ = restarting
    frozen, dying = await supervisor.start_group([child_spec("frozen"), child_spec("dying")])
    os.kill(frozen.pid, signal.SIGSTOP)
    os.kill(dying.pid, signal.SIGKILL)
    started = time.monotonic()
    await supervisor.stop_all(timeout_s=4.0)
    assert time.monotonic() - started < 4.5
    for child in (frozen, dying):
        assert child.process.returncode is not None
        assert child.state == "stopped"
    # A frozen child that got SIGTERM + SIGCONT ends by the SIGTERM, well inside the budget.
    assert frozen.process.returncode == -signal.SIGTERM
