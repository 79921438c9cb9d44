"""Fixtures shared by the whole suite: real processes on port 0, torn down after each test."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from simulator.supervisor import ChildSpec, RunningChild, Supervisor

REPO_ROOT = Path(__file__).resolve().parent.parent


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
