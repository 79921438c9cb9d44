"""``edgecdn up`` as a user meets it: a real supervisor process with real children.

It must start, publish world.json, stop on SIGTERM or Ctrl-C within 5 seconds with no
process left behind (even when the supervisor itself is SIGKILLed), refuse a second
world, and reject a bad world file with a message naming the key.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from runtime.world_state import WorldState, read_world_state
from tests.conftest import REPO_ROOT

DEFAULT_WORLD = REPO_ROOT / "deploy" / "local" / "world.toml"
START_TIMEOUT_S = 45.0
STOP_BUDGET_S = 5.0


@dataclass
class RunningWorld:
    process: asyncio.subprocess.Process
    state_dir: Path
    state: WorldState

    @property
    def child_pids(self) -> list[int]:
        return [entry.pid for entry in self.state.processes]


async def start_world(state_dir: Path, *extra: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "simulator",
        "up",
        "--world",
        str(DEFAULT_WORLD),
        "--state-dir",
        str(state_dir),
        *extra,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        cwd=REPO_ROOT,
    )


async def wait_for_state(process: asyncio.subprocess.Process, state_dir: Path) -> WorldState:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if process.returncode is not None:
            _, err = await process.communicate()
            pytest.fail(f"edgecdn up exited early ({process.returncode}): {err.decode()}")
        if (state_dir / "world.json").exists():
            return read_world_state(state_dir / "world.json")
        await asyncio.sleep(0.05)
    pytest.fail("edgecdn up did not write world.json in time")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purpose; /proc says so.
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "State:\tZ" not in status


async def wait_gone(pids: list[int], budget_s: float) -> list[int]:
    deadline = time.monotonic() + budget_s
    while time.monotonic() < deadline:
        left = [pid for pid in pids if alive(pid)]
        if not left:
            return []
        await asyncio.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[RunningWorld]:
    state_dir = tmp_path / "state"
    process = await start_world(state_dir)
    try:
        state = await wait_for_state(process, state_dir)
        yield RunningWorld(process=process, state_dir=state_dir, state=state)
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


async def test_world_state_points_at_a_serving_control_plane(world: RunningWorld) -> None:
    data = json.loads((world.state_dir / "world.json").read_text())
    assert data["control_plane"]["address"].startswith("127.0.0.1:")
    assert data["supervisor_pid"] == world.process.pid
    async with grpc.aio.insecure_channel(world.state.control_plane_address) as channel:
        response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
async def test_stops_cleanly_within_five_seconds(world: RunningWorld, stop_signal: signal.Signals) -> None:
    pids = world.child_pids
    assert pids, "the world runs at least the control plane"
    started = time.monotonic()
    world.process.send_signal(stop_signal)
    code = await asyncio.wait_for(world.process.wait(), STOP_BUDGET_S)
    assert code == 0
    assert await wait_gone(pids, STOP_BUDGET_S - (time.monotonic() - started)) == []
    assert not (world.state_dir / "world.json").exists(), "a stopped world leaves no stale world.json"


async def test_killed_supervisor_leaves_no_orphans(world: RunningWorld) -> None:
    pids = world.child_pids
    world.process.kill()
    await world.process.wait()
    assert await wait_gone(pids, STOP_BUDGET_S) == []


async def test_a_second_world_is_refused(world: RunningWorld) -> None:
    second = await start_world(world.state_dir)
    _, err = await asyncio.wait_for(second.communicate(), 30)
    assert second.returncode == 2
    assert "already running" in err.decode()
    assert world.process.returncode is None, "the first world keeps running"


def run_up(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "simulator", "up", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO_ROOT,
        check=False,
    )


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("[[regions]\n", "world.toml"),
        ("seed = 'x'\n", "seed"),
    ],
)
def test_bad_world_file_names_the_problem(tmp_path: Path, content: str, expected: str) -> None:
    bad = tmp_path / "world.toml"
    bad.write_text(content)
    result = run_up("--world", str(bad), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2
    assert result.stderr.startswith("edgecdn up: ")
    assert expected in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_world_file_is_a_clear_error(tmp_path: Path) -> None:
    result = run_up("--world", str(tmp_path / "absent.toml"), "--state-dir", str(tmp_path / "state"))
    assert result.returncode == 2
    assert "absent.toml" in result.stderr
    assert "Traceback" not in result.stderr
