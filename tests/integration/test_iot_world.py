"""The IoT half of a whole world, as the README's tour drives it: gateways behind every
region, the heat wave's alerts read from Korea through the router, an OTA update, and a
gateway and the broker killed with SIGKILL and found again."""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import aiohttp
import pytest

from geo.world import load_world
from simulator.local_world import LocalWorld
from tests.conftest import REPO_ROOT

pytestmark = pytest.mark.asyncio(loop_scope="module")

WORLD = load_world(REPO_ROOT / "deploy" / "local" / "world.toml")
STRICT_MODULE = REPO_ROOT / "handlers" / "sensor-stats" / "sensor_stats_25c.wasm"
TOKYO_GATEWAY = "ap-northeast-1-gw-1"


async def gateways(world: LocalWorld) -> dict[str, dict[str, Any]]:
    listed = await world.run("edgectl", "gateways", "list", "-o", "json")
    assert listed.code == 0, listed.err
    return {gateway["gateway_id"]: gateway for gateway in json.loads(listed.out)}


async def eventually(check: Any, *, timeout_s: float, what: str) -> Any:
    """``await check()`` once it is truthy; fails after ``timeout_s`` saying ``what``."""
    deadline = time.monotonic() + timeout_s
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout_s}s: {what}"
        await asyncio.sleep(0.2)


async def iot_from(world: LocalWorld, country: str) -> dict[str, Any]:
    router = world.state.router_url
    assert router is not None
    connector = aiohttp.TCPConnector(local_addr=(WORLD.country(country).client_address(), 0))
    async with (
        aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=5)) as client,
        client.get(f"{router}/_edge/iot") as response,
    ):
        assert response.status == 200
        body: dict[str, Any] = await response.json()
        return body


async def test_every_region_has_its_gateways_online(local_world: LocalWorld) -> None:
    expected = {gateway.gateway_id for gateway in local_world.state.gateways}
    assert expected == {f"{region.id}-gw-1" for region in WORLD.regions}

    async def all_online() -> bool:
        listed = await gateways(local_world)
        return set(listed) == expected and all(g["online"] and g["module_sha256"] for g in listed.values())

    await eventually(all_online, timeout_s=20, what="every gateway online with a module")


async def test_korea_reads_seouls_heat_wave_through_the_router(local_world: LocalWorld) -> None:
    async def alerts() -> list[dict[str, Any]]:
        seen = await iot_from(local_world, "KR")
        assert seen["region"] == "ap-northeast-2"
        return [alert for alert in seen["alerts"] if alert["sensor"] == "temperature"]

    # The world's heat wave starts 30 s after its gateways do (deploy/local/world.toml).
    found = await eventually(alerts, timeout_s=60, what="Seoul's heat-wave alerts")
    assert all(alert["value"] > 30 for alert in found)
    tokyo = await iot_from(local_world, "JP")
    assert tokyo["region"] == "ap-northeast-1"
    assert [g["gateway_id"] for g in tokyo["gateways"]] == [TOKYO_GATEWAY]


async def test_an_ota_update_survives_the_gateway_being_killed(local_world: LocalWorld) -> None:
    pushed = await local_world.run("edgectl", "modules", "push", str(STRICT_MODULE))
    assert pushed.code == 0, pushed.err
    digest = pushed.out.split("sha256:")[1].split()[0]
    updated = await local_world.run(
        "edgectl", "gateways", "update-module", digest, "--gateway", TOKYO_GATEWAY
    )
    assert updated.code == 0, updated.out + updated.err
    assert (await gateways(local_world))[TOKYO_GATEWAY]["module_sha256"] == digest
    # An update becomes the last good module once it passed probation (3 batches): sample
    # faster so that takes seconds, not the default half a minute.
    faster = await local_world.run("edgectl", "gateways", "set-interval", "50ms", "--gateway", TOKYO_GATEWAY)
    assert faster.code == 0, faster.out + faster.err

    async def probation_over() -> bool:
        ping = await local_world.run("edgectl", "gateways", "ping", "--gateway", TOKYO_GATEWAY, "-o", "json")
        answer = json.loads(ping.out)
        results = answer["results"] if isinstance(answer, dict) else answer
        status = results[0]["status"] or {}
        return ping.code == 0 and status.get("module_probation_left") == 0

    await eventually(probation_over, timeout_s=30, what="the update through its probation")
    killed = await local_world.run("edgecdn", "chaos", "kill", TOKYO_GATEWAY)
    assert killed.code == 0, killed.err

    async def back_on_its_module() -> bool:
        gateway = (await gateways(local_world))[TOKYO_GATEWAY]
        entry = local_world.state.process("iot-gateway ap-northeast-1")
        restarted = entry is not None and entry.restarts >= 1 and entry.state == "up"
        return restarted and gateway["online"] and gateway["module_sha256"] == digest

    # The last good module is on disk: the restarted gateway runs it without being told.
    await eventually(back_on_its_module, timeout_s=30, what="the gateway back on the updated module")


async def test_a_module_that_fails_its_trial_is_refused_and_nothing_changes(local_world: LocalWorld) -> None:
    broken = REPO_ROOT / "handlers" / "geo-hello-broken" / "geo_hello_broken.wasm"
    pushed = await local_world.run("edgectl", "modules", "push", str(broken))
    assert pushed.code == 0, pushed.err
    digest = pushed.out.split("sha256:")[1].split()[0]
    before = (await gateways(local_world))["eu-central-1-gw-1"]["module_sha256"]
    refused = await local_world.run(
        "edgectl", "gateways", "update-module", digest, "--region", "eu-central-1", "-o", "json"
    )
    assert refused.code == 1
    answer = json.loads(refused.out)
    (result,) = answer["results"] if isinstance(answer, dict) else answer
    assert not result["ok"]
    assert "failed its trial" in result["message"]
    assert (await gateways(local_world))["eu-central-1-gw-1"]["module_sha256"] == before


async def test_the_broker_killed_comes_back_and_gateways_with_it(local_world: LocalWorld) -> None:
    killed = await local_world.run("edgecdn", "chaos", "kill", "broker")
    assert killed.code == 0, killed.err

    async def everyone_back() -> bool:
        entry = local_world.state.process("mqtt-broker")
        if entry is None or entry.restarts < 1 or entry.state != "up":
            return False
        listed = await gateways(local_world)
        ping = await local_world.run("edgectl", "gateways", "ping", "--all", "--timeout", "2s")
        return len(listed) == len(WORLD.regions) and ping.code == 0

    await eventually(everyone_back, timeout_s=45, what="the broker restarted and every gateway answering")
