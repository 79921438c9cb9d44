"""Fixtures shared by the whole suite: real processes on port 0, torn down after each test."""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tools import accel

REPO_ROOT = Path(__file__).resolve().parent.parent
# Every edge node a test starts is one process (its --workers default is the CPU count),
# unless the test asks for workers: tests/edge_node/test_workers.py.
os.environ["EDGE_NODE_WORKERS"] = "1"
# Every world and control plane a test starts compiles into one directory, as the processes of
# one machine do (a Python component takes ~20 s to compile, then ~5 ms to load): checked,
# atomically written artefacts, compiled once under a lock whichever test or worker is first.
# Edge nodes started on their own keep their own (tests/edge_node/test_lifecycle.py counts
# their compiles).
TEST_MODULE_CACHE = REPO_ROOT / ".edgecdn" / "test-compiled"
os.environ.setdefault("EDGECDN_MODULE_CACHE_DIR", str(TEST_MODULE_CACHE))
os.environ.setdefault("CONTROL_PLANE_MODULE_CACHE_DIR", str(TEST_MODULE_CACHE))


def pytest_sessionstart(session: pytest.Session) -> None:
    """Refuse to test a compiled module older than its source: the tests would not see the edit."""
    outdated = accel.stale()
    if outdated:
        pytest.exit(
            f"compiled modules are older than their sources: {', '.join(outdated)}; "
            "run `make setup` to rebuild them (or `python -m tools.accel clean`)",
            returncode=2,
        )


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Supervisor]:
    """A process supervisor whose children are all stopped when the test ends."""
    async with Supervisor(tmp_path / "run") as running:
        yield running


@pytest.fixture
async def control_plane(supervisor: Supervisor) -> RunningChild:
    """A real control-plane process listening on a free loopback port."""
    return await supervisor.start(
        ChildSpec(name="control-plane", argv=(sys.executable, "-m", "control_plane", "--port", "0"))
    )
