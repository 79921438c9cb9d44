"""``GET /_edge/iot`` with real processes: a broker (both engines), an edge node following its
region on it, and stand-in gateways (tiny aiomqtt publishers that follow docs/iot.md)."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from http import HTTPStatus
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from geo.world import load_world
from iotwire.payloads import encode
from iotwire.topics import topic
from mqtt_broker.server import free_port
from simulator.restarts import RestartPolicy
from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tests.edge_node.conftest import REGION, WORLD_FILE, edge_node_spec, node_url, write_test_app
from tests.mqtt_brokers import ENGINES, BrokerUnderTest, start_broker

OTHER_REGION = "eu-central-1"
Published = tuple[str, bytes, bool]  # topic, payload, retained


async def eventually(check: Callable[[], Awaitable[bool]], timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)


async def get_iot(node: RunningChild) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as http, http.get(f"{node_url(node)}/_edge/iot") as response:
        return response.status, await response.json()


async def get_metrics(node: RunningChild) -> str:
    async with aiohttp.ClientSession() as http, http.get(f"{node_url(node)}/metrics") as response:
        return await response.text()


def gateways_of(document: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {gateway["gateway_id"]: gateway for gateway in document["gateways"]}


async def start_node(supervisor: Supervisor, tmp_path: Path, broker: BrokerUnderTest) -> RunningChild:
    app = write_test_app(tmp_path / "app")
    spec = edge_node_spec(
        app, tmp_path / "node", *broker.flags("control-plane"), "--reconnect-max", "0.5s", name="edge-iot"
    )
    return await supervisor.start(spec)


async def publish(broker: BrokerUnderTest, *messages: Published) -> None:
    """Publish as a gateway would: (topic, payload, retained), QoS 1."""
    async with broker.link("gateway").client(f"stand-in-{time.monotonic_ns()}") as client:
        for name, payload, retain in messages:
            await client.publish(name, payload, qos=1, retain=retain)


def status(gateway: str, *, region: str = REGION, online: bool = True, **extra: Any) -> Published:
    body = {"gateway_id": gateway, "region": region, "online": online, "ts": time.time(), **extra}
    return topic(region, gateway, "status"), encode(body), True


def result(gateway: str, value: float, *, region: str = REGION) -> Published:
    body = {"gateway_id": gateway, "region": region, "ts": time.time(), "batch": 1,
            "module_sha256": "ab" * 32, "result": {"temperature": {"count": 10, "avg": value}}}  # fmt: skip
    return topic(region, gateway, "results"), encode(body), False


def alert(gateway: str, value: float, *, region: str = REGION) -> Published:
    body = {"gateway_id": gateway, "region": region, "ts": time.time(), "sensor": "temperature",
            "value": value, "threshold": 35.0, "message": "too hot"}  # fmt: skip
    return topic(region, gateway, "alerts"), encode(body), False


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_node_serves_its_regions_gateways_and_refuses_malformed_messages(
    supervisor: Supervisor, tmp_path: Path, engine: str
) -> None:
    broker = await start_broker(supervisor, tmp_path, engine)
    node = await start_node(supervisor, tmp_path, broker)

    async def connected() -> bool:
        return bool((await get_iot(node))[1]["broker"] == "connected")

    await eventually(connected)
    await publish(
        broker,
        status("gw-1", module_sha256="ab" * 32, readings_total=120, alerts_total=1),
        status("gw-2", online=False, reason="connection lost"),
        status("gw-9", region=OTHER_REGION),
        result("gw-1", 21.5),
        result("gw-9", 99.0, region=OTHER_REGION),
        alert("gw-1", 41.0),
        alert("gw-9", 50.0, region=OTHER_REGION),
        (topic(REGION, "gw-1", "results"), b"not json", False),
        (topic(REGION, "gw-1", "alerts"), encode({"sensor": "temperature"}), False),
        (topic(REGION, "gw-3", "status"), encode({"gateway_id": "gw-4", "online": True}), True),
    )

    async def seen() -> bool:
        gateways = gateways_of((await get_iot(node))[1])
        return "gw-2" in gateways and bool(gateways.get("gw-1", {}).get("alerts"))

    await eventually(seen)
    status_code, document = await get_iot(node)
    assert status_code == 200
    assert (document["region"], document["node_id"]) == (REGION, f"{REGION}-a")
    gateways = gateways_of(document)
    assert set(gateways) == {"gw-1", "gw-2"}  # nothing of another region; gw-3's status was refused
    assert gateways["gw-1"]["online"] is True
    assert gateways["gw-1"]["result"] == {"temperature": {"count": 10, "avg": 21.5}}
    assert gateways["gw-1"]["module_sha256"] == "ab" * 32
    assert gateways["gw-1"]["readings_total"] == 120
    assert [a["value"] for a in gateways["gw-1"]["alerts"]] == [41.0]
    assert gateways["gw-2"]["online"] is False
    assert gateways["gw-2"]["offline_reason"] == "connection lost"
    assert [a["gateway_id"] for a in document["alerts"]] == ["gw-1"]

    async def refusals_counted() -> bool:
        text = await get_metrics(node)
        return all(
            f'edge_iot_messages_refused_total{{reason="{reason}"}} 1.0' in text
            for reason in ("not_json", "missing_field", "id_mismatch")
        )

    await eventually(refusals_counted)
    assert node.process.returncode is None


async def test_without_a_broker_the_iot_path_says_so(supervisor: Supervisor, tmp_path: Path) -> None:
    node = await supervisor.start(edge_node_spec(write_test_app(tmp_path / "app"), tmp_path / "node"))
    status_code, document = await get_iot(node)
    assert status_code == 503
    assert "no MQTT broker is configured" in document["error"]


@pytest.fixture
async def restarting(tmp_path: Path) -> AsyncIterator[Supervisor]:
    policy = RestartPolicy(initial_s=0.2, maximum_s=1.0, healthy_after_s=60)
    async with Supervisor(tmp_path / "run-restarting", policy=policy) as supervisor:
        yield supervisor


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_node_reconnects_when_the_broker_comes_back(
    restarting: Supervisor, supervisor: Supervisor, tmp_path: Path, engine: str
) -> None:
    broker = await start_broker(restarting, tmp_path, engine, port=free_port("127.0.0.1"))
    node = await start_node(supervisor, tmp_path, broker)

    async def broker_is(state: str) -> bool:
        return bool((await get_iot(node))[1]["broker"] == state)

    await eventually(lambda: broker_is("connected"))
    old_pid = broker.child.pid
    os.kill(old_pid, signal.SIGKILL)
    await eventually(lambda: broker_is("reconnecting"))
    await eventually(lambda: asyncio.sleep(0, broker.child.state == "up" and broker.child.pid != old_pid))
    await eventually(lambda: broker_is("connected"))
    # The broker lost its retained messages with its memory; the gateway publishes its status
    # again on reconnect, and the node learns it from the broker it is connected to now.
    await publish(broker, status("gw-5"))

    async def learned() -> bool:
        return "gw-5" in gateways_of((await get_iot(node))[1])

    await eventually(learned)
    assert "edge_iot_broker_connects_total 2.0" in await get_metrics(node)


async def test_a_client_in_korea_reads_seouls_gateways_through_the_router(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    broker = await start_broker(supervisor, tmp_path, "amqtt")
    node = await start_node(supervisor, tmp_path, broker)
    edge = f"{REGION}={node_url(node)}"
    argv = (sys.executable, "-m", "router", "--world", str(WORLD_FILE), "--port", "0",
            "--geo-cache-dir", str(tmp_path / "router-geo"), "--edge", edge)  # fmt: skip
    router = await supervisor.start(ChildSpec(name="router", argv=argv))
    await publish(broker, status("gw-1"))
    korea = load_world(WORLD_FILE).country("KR").client_address()

    async def through_router() -> bool:
        connector = aiohttp.TCPConnector(local_addr=(korea, 0), force_close=True)
        async with (
            aiohttp.ClientSession(connector=connector) as http,
            http.get(f"{router.report.addresses['http']}/_edge/iot") as response,
        ):
            if response.status != HTTPStatus.OK:
                return False
            document = await response.json()
        return document["region"] == REGION and "gw-1" in gateways_of(document)

    await eventually(through_router)
