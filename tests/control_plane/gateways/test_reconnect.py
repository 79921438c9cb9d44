"""The broker goes away and comes back: the coordinator reconnects with back-off and
re-learns gateways; a second coordinator (a control-plane restart) learns every gateway from
the retained status alone, without disturbing them."""

from __future__ import annotations

import contextlib
from pathlib import Path
from urllib.parse import urlsplit

import aiomqtt

from control_plane.gateways.commands import CommandSpec, Targets
from control_plane.gateways.coordinator import Coordinator
from cpclient.backoff import Backoff
from simulator.supervisor import Supervisor
from tests.control_plane.gateways.conftest import running
from tests.control_plane.gateways.peers import DIGEST, Fake, Peers, until
from tests.mqtt_brokers import BrokerUnderTest, start_broker

BEFORE = Fake(gateway_id="gw-before", region="eu-west-1")
AFTER = Fake(gateway_id="gw-after", region="eu-west-1")


async def test_reconnects_after_a_broker_restart(
    broker: BrokerUnderTest, supervisor: Supervisor, tmp_path: Path
) -> None:
    coordinator = Coordinator(
        broker.link(), has_module={DIGEST}.__contains__, backoff=Backoff(initial_s=0.05, maximum_s=0.5)
    )
    async with running(coordinator):
        peer = Peers(broker.link("gateway"), [BEFORE])
        async with contextlib.AsyncExitStack() as stack:
            await stack.enter_async_context(peer)
            await until(lambda: coordinator.registry.get("gw-before") is not None)
            broker.child.process.terminate()  # the wrapper stops its broker with it
            await broker.child.process.wait()
            await until(lambda: not coordinator.connected)
            with contextlib.suppress(aiomqtt.MqttError):
                await stack.aclose()
        port = urlsplit(broker.url).port or 0
        (tmp_path / "again").mkdir()
        again = await start_broker(supervisor, tmp_path / "again", broker.engine, port=port)
        await until(lambda: coordinator.connected)
        async with Peers(again.link("gateway"), [AFTER]):
            await until(lambda: coordinator.registry.get("gw-after") is not None)
            (result,) = await coordinator.send(
                CommandSpec(kind="ping"), Targets(gateway_ids=("gw-after",)), 5
            )
            assert result.ok


async def test_a_new_coordinator_learns_from_retained_status(broker: BrokerUnderTest) -> None:
    gateways = [Fake(gateway_id=f"gw-{i}", region="eu-west-1") for i in range(5)]
    async with Peers(broker.link("gateway"), gateways) as peers:
        async with running(Coordinator(broker.link(), has_module=bool)) as first:
            await until(lambda: len(first.gateways()) == 5)
        # The first one is gone (a restart); its successor learns everything from retained status.
        async with running(Coordinator(broker.link(), has_module=bool)) as second:
            await until(lambda: len(second.gateways()) == 5)
            assert all(g.online for g in second.gateways())
        assert peers.seen.commands == []
