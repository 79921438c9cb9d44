"""``edgecdn status`` asks the broker itself: an MQTT CONNECT answered by a CONNACK, even one
that refuses the anonymous probe, is "up"; a port where nothing listens is not."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from mqtt_broker.server import free_port
from simulator.status_cmd import _probe_mqtt
from simulator.supervisor import Supervisor
from tests.mqtt_brokers import ENGINES, start_broker


@pytest.fixture
async def supervisor(tmp_path: Path) -> AsyncIterator[Supervisor]:
    async with Supervisor(tmp_path / "run") as running:
        yield running


@pytest.mark.parametrize("engine", ENGINES)
async def test_a_running_broker_answers_the_probe(
    supervisor: Supervisor, tmp_path: Path, engine: str
) -> None:
    broker = await start_broker(supervisor, tmp_path, engine)
    assert await _probe_mqtt(broker.url) == ""


async def test_a_closed_port_is_no_answer() -> None:
    problem = await _probe_mqtt(f"mqtt://127.0.0.1:{free_port('127.0.0.1')}")
    assert problem.startswith("no answer")


async def test_an_address_without_a_port_is_named() -> None:
    assert await _probe_mqtt("mqtt://127.0.0.1") == "not an MQTT address: mqtt://127.0.0.1"
