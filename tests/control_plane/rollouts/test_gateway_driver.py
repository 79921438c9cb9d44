"""The rollout driver moving gateways, against a real broker and the real coordinator: stand-in
gateways (docs/iot.md: retained status, one ``cmd/result`` per ``cmd``, a status after an
update) take the wave's ``update_module``; a refusal rolls the wave back and the gateways that
moved get their previous module again. Also the start refusals."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import AsyncExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiomqtt
import pytest

from control_plane.apps import AppRegistry
from control_plane.blobs import BlobStore
from control_plane.compile_check import ModuleValidator
from control_plane.db import Database
from control_plane.errors import NotFoundError
from control_plane.fleet import Fleet
from control_plane.gateways.coordinator import Coordinator
from control_plane.modules import ModuleRegistry
from control_plane.rollouts.driver import RolloutDriver
from control_plane.rollouts.figures import HeartbeatFigures
from control_plane.rollouts.gates import GateLimits
from control_plane.rollouts.gateway_waves import NO_BROKER, GatewayRolloutRefusedError
from control_plane.rollouts.model import Rollout, RolloutSpec, RolloutState, WaveSpec
from control_plane.rollouts.store import RolloutStore
from iotwire.link import BrokerLink, publish_properties, response_of
from iotwire.payloads import BadCommand, CommandResult, encode, parse_command
from iotwire.topics import parse_topic, subscription, topic
from mqtt_broker.server import mosquitto_binary
from simulator.supervisor import Supervisor
from tests.control_plane.gateways.peers import until
from tests.mqtt_brokers import BrokerUnderTest, start_broker

OLD, NEW = "ab" * 32, "cd" * 32
REGION = "eu-west-1"


@dataclass(slots=True)
class StandIn:
    """One gateway's state as its status tells it."""

    gateway_id: str
    module: str = OLD
    online: bool = True
    refuse: bool = False  # answer update_module with ok:false (the module failed to load)
    rollbacks: int = 0

    def status(self) -> dict[str, Any]:
        return {
            "gateway_id": self.gateway_id, "region": REGION, "online": self.online,
            "module_sha256": self.module, "module_name": "sensor-stats", "sensors": ["temperature"],
            "interval_s": 1.0, "readings_total": 10, "batches_total": 1, "alerts_total": 0,
            "module_errors_total": 0, "rollbacks_total": self.rollbacks, "labels": {}, "ts": time.time(),
        }  # fmt: skip


@dataclass(slots=True)
class StandIns:
    """Gateways on one broker connection; ``commands`` are (gateway id, kind, sha256)."""

    gateways: dict[str, StandIn]
    commands: list[tuple[str, str, str]] = field(default_factory=list)
    client: aiomqtt.Client | None = None

    async def publish_status(self, gateway_id: str) -> None:
        assert self.client is not None
        await self._status(self.client, self.gateways[gateway_id])

    async def serve(self, link: BrokerLink) -> None:
        async with link.client(f"stand-ins-{id(self)}", timeout_s=2) as client:
            self.client = client
            await client.subscribe(subscription("cmd"), qos=1)
            for gateway in self.gateways.values():
                await self._status(client, gateway)
            async for message in client.messages:
                await self._answer(client, link, message)

    async def _status(self, client: aiomqtt.Client, gateway: StandIn) -> None:
        name = topic(REGION, gateway.gateway_id, "status")
        await client.publish(name, encode(gateway.status()), qos=1, retain=True)

    async def _answer(self, client: aiomqtt.Client, link: BrokerLink, message: aiomqtt.Message) -> None:
        where = parse_topic(str(message.topic))
        gateway = None if isinstance(where, str) else self.gateways.get(where.gateway_id)
        if gateway is None or not isinstance(message.payload, bytes | bytearray):
            return
        command = parse_command(bytes(message.payload))
        if isinstance(command, BadCommand):
            return
        self.commands.append((gateway.gateway_id, command.kind, command.sha256))
        ok = not (gateway.refuse and command.kind == "update_module")
        if ok and command.kind == "update_module":
            gateway.module = command.sha256
            await self._status(client, gateway)  # the status says what it runs now
        result = CommandResult(
            command_id=command.command_id, gateway_id=gateway.gateway_id, ok=ok,
            message="done" if ok else "module failed to instantiate", status=gateway.status(),
        )  # fmt: skip
        response, correlation = response_of(message)
        properties = publish_properties(correlation_data=correlation) if link.v5 else None
        target = response or topic(REGION, gateway.gateway_id, "cmd/result")
        await client.publish(target, result.to_payload(), qos=1, properties=properties)


@pytest.fixture
async def broker(supervisor: Supervisor, tmp_path: Path) -> BrokerUnderTest:
    return await start_broker(supervisor, tmp_path, "amqtt" if mosquitto_binary() is None else "mosquitto")


@pytest.fixture
def database(tmp_path: Path) -> Iterator[tuple[Database, ModuleValidator]]:
    with closing(Database(tmp_path / "cp.sqlite3")) as db, ModuleValidator() as validator:
        yield db, validator


def make_driver(
    database: tuple[Database, ModuleValidator], tmp_path: Path, coordinator: Coordinator | None
) -> RolloutDriver:
    db, validator = database
    apps = AppRegistry(db, ModuleRegistry(db, BlobStore(tmp_path / "modules"), validator))
    fleet = Fleet(db, apps, heartbeat_interval_s=1.0, missed_allowed=3)
    return RolloutDriver(
        store=RolloutStore(db),
        fleet=fleet,
        apps=apps,
        figures=HeartbeatFigures(fleet.figures),
        world_regions=(REGION,),
        tick_s=0.05,
        gateways=coordinator,
        has_module={OLD, NEW}.__contains__,
    )


def gateway_spec(bake_s: float = 0.3) -> RolloutSpec:
    return RolloutSpec(
        app="",
        version="",
        gateway_module=NEW,
        waves=(WaveSpec(regions=(REGION,), bake_s=bake_s),),
        limits=GateLimits(max_error_rate=0.01, max_p99_ms=250, min_requests=50),
        progress_deadline_s=10.0,
    )


async def _stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


@pytest.fixture
async def world(
    broker: BrokerUnderTest, database: tuple[Database, ModuleValidator], tmp_path: Path
) -> AsyncIterator[tuple[RolloutDriver, Coordinator, AsyncExitStack]]:
    """A running coordinator and driver; the stack runs stand-ins until the test ends."""
    coordinator = Coordinator(broker.link(), has_module={OLD, NEW}.__contains__)
    driver = make_driver(database, tmp_path, coordinator)
    async with AsyncExitStack() as stack:
        for task in (asyncio.create_task(coordinator.run()), asyncio.create_task(driver.run())):
            stack.push_async_callback(_stop, task)
        await until(lambda: coordinator.connected)
        yield driver, coordinator, stack


async def serve(
    stack: AsyncExitStack, broker: BrokerUnderTest, coordinator: Coordinator, stand_ins: StandIns
) -> None:
    task = asyncio.create_task(stand_ins.serve(broker.link("gateway")))
    stack.push_async_callback(_stop, task)
    await until(lambda: len(coordinator.gateways()) == len(stand_ins.gateways))


async def finished(driver: RolloutDriver, rollout: Rollout) -> Rollout:
    await until(lambda: driver.get(rollout.id).state.terminal)
    return driver.get(rollout.id)


async def test_wave_moves_online_gateways_and_succeeds(
    broker: BrokerUnderTest, world: tuple[RolloutDriver, Coordinator, AsyncExitStack]
) -> None:
    driver, coordinator, stack = world
    gateways = StandIns(
        {g.gateway_id: g for g in (StandIn("gw-1"), StandIn("gw-2"), StandIn("gw-3", online=False))}
    )
    await serve(stack, broker, coordinator, gateways)
    rollout = driver.start(gateway_spec())
    # Every known gateway, offline too (an offline status names no module it runs).
    before = {f"{REGION}/gw-{i}": OLD for i in (1, 2)} | {f"{REGION}/gw-3": ""}
    assert dict(rollout.gateway_modules_before) == before
    done = await finished(driver, rollout)
    assert done.state is RolloutState.SUCCEEDED, done.message
    assert sorted(gateways.commands) == [("gw-1", "update_module", NEW), ("gw-2", "update_module", NEW)]
    assert done.waves[0].expected_nodes == ("gw-1", "gw-2")  # gw-3 was offline: skipped
    figures = done.waves[0].gate.figures if done.waves[0].gate else None
    assert figures is not None
    assert (figures.gateway_rollbacks, figures.gateway_errors) == (0, 0)


async def test_refused_update_rolls_back_the_gateways_that_moved(
    broker: BrokerUnderTest, world: tuple[RolloutDriver, Coordinator, AsyncExitStack]
) -> None:
    driver, coordinator, stack = world
    gateways = StandIns({g.gateway_id: g for g in (StandIn("gw-1"), StandIn("gw-2", refuse=True))})
    await serve(stack, broker, coordinator, gateways)
    done = await finished(driver, driver.start(gateway_spec(bake_s=30)))
    assert done.state is RolloutState.ROLLED_BACK, done.message
    assert "gw-2" in done.message
    assert "module failed to instantiate" in done.message
    # gw-1 took the new module and gets its old one back; gw-2 never moved.
    assert gateways.commands.count(("gw-1", "update_module", OLD)) == 1
    assert ("gw-2", "update_module", OLD) not in gateways.commands
    assert gateways.gateways["gw-1"].module == OLD


async def test_start_refusals(
    database: tuple[Database, ModuleValidator], tmp_path: Path, broker: BrokerUnderTest
) -> None:
    without = make_driver(database, tmp_path, None)
    with pytest.raises(GatewayRolloutRefusedError, match=r"no MQTT broker configured \(--mqtt\)") as refused:
        without.start(gateway_spec())
    assert str(refused.value) == NO_BROKER
    coordinator = Coordinator(broker.link(), has_module={OLD, NEW}.__contains__)  # not running: no gateways
    driver = make_driver(database, tmp_path, coordinator)
    with pytest.raises(NotFoundError, match="module ef"):
        driver.start(RolloutSpec(app="", version="", gateway_module="ef" * 32, waves=gateway_spec().waves))
    first = driver.start(gateway_spec())
    with pytest.raises(
        GatewayRolloutRefusedError, match=f"rollout {first.id} .* one rollout with a gateway module"
    ):
        driver.start(gateway_spec())


async def test_gateway_self_rollback_fails_the_gate(
    broker: BrokerUnderTest, world: tuple[RolloutDriver, Coordinator, AsyncExitStack]
) -> None:
    driver, coordinator, stack = world
    gateways = StandIns({"gw-1": StandIn("gw-1")})
    await serve(stack, broker, coordinator, gateways)
    rollout = driver.start(gateway_spec(bake_s=30))
    await until(lambda: driver.get(rollout.id).state is RolloutState.BAKING)
    # The module failed on the gateway after the update: it went back to the old one by itself.
    gateways.gateways["gw-1"].rollbacks, gateways.gateways["gw-1"].module = 1, OLD
    await gateways.publish_status("gw-1")
    done = await finished(driver, rollout)
    assert done.state is RolloutState.ROLLED_BACK, done.message
    assert "1 gateway module rollbacks" in done.message
    assert done.waves[0].gate is not None
    assert done.waves[0].gate.figures.gateway_rollbacks == 1
    assert gateways.commands == [("gw-1", "update_module", NEW)]  # already on its old module


async def test_wave_without_gateways_completes(
    world: tuple[RolloutDriver, Coordinator, AsyncExitStack],
) -> None:
    driver, _coordinator, _stack = world
    done = await finished(driver, driver.start(gateway_spec(bake_s=0.1)))
    assert done.state is RolloutState.SUCCEEDED, done.message
    assert done.waves[0].expected_nodes == ()
