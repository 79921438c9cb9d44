"""Fixtures of the gateway tests: a real broker process (both engines where asked) and a
running coordinator connected to it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from control_plane.gateways.coordinator import Coordinator
from mqtt_broker.server import mosquitto_binary
from simulator.supervisor import Supervisor
from tests.control_plane.gateways.peers import DIGEST, until
from tests.mqtt_brokers import ENGINES, BrokerUnderTest, start_broker


@pytest.fixture(params=ENGINES)
async def broker(request: pytest.FixtureRequest, supervisor: Supervisor, tmp_path: Path) -> BrokerUnderTest:
    return await start_broker(supervisor, tmp_path, str(request.param))


@pytest.fixture
async def mosquitto_broker(supervisor: Supervisor, tmp_path: Path) -> BrokerUnderTest:
    """Mosquitto when installed, else amqtt: for tests that need one broker, not both."""
    engine = "amqtt" if mosquitto_binary() is None else "mosquitto"
    return await start_broker(supervisor, tmp_path, engine)


@pytest.fixture
async def coordinator(broker: BrokerUnderTest) -> AsyncIterator[Coordinator]:
    async with running(Coordinator(broker.link(), has_module={DIGEST}.__contains__)) as running_one:
        yield running_one


class running:  # noqa: N801 - reads as a context manager
    """Run a coordinator as a task until the block ends (connected first)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self.coordinator = coordinator
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Coordinator:
        self._task = asyncio.create_task(self.coordinator.run(), name="test-coordinator")
        await until(lambda: self.coordinator.connected)
        return self.coordinator

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()
        await asyncio.gather(self._task, return_exceptions=True)
