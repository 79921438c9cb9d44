"""A whole local world for whole-system scenarios: ``edgecdn up`` as a user runs it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from simulator.local_world import LocalWorld
from tests.conftest import REPO_ROOT


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def local_world(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[LocalWorld]:
    """One world per module: its tests each leave it healed, so they can share it."""
    async with LocalWorld(tmp_path_factory.mktemp("world") / "state", cwd=REPO_ROOT) as world:
        yield world
