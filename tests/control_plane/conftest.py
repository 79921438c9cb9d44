"""Fixtures of the control-plane tests: an in-process server with a fresh data dir."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from tests.control_plane.support import LiveControlPlane, control_plane_in_process


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[LiveControlPlane]:
    async with control_plane_in_process(tmp_path / "cp", heartbeat_interval_s=0.2) as running:
        yield running


@pytest.fixture
async def channel(live: LiveControlPlane) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(live.address) as opened:
        yield opened
