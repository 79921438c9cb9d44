"""WAN faults as an operator's chaos tool meets them: real router processes, set and healed
over HTTP (/_router/faults), felt by clients from real countries.

One set of processes serves the module: stand-in edge nodes in ap-northeast-2 (where
Korean clients go) and sa-east-1 (Brazilian clients), behind three routers: ``armed``
(--wan off, so it has the fast path, with --admin-token), ``modeled`` (--wan model, with
the token in EDGE_ROUTER_ADMIN_TOKEN) and ``unarmed`` (no token). Every test starts and
ends with no fault set.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio

from geo.world import World
from simulator.supervisor import RunningChild, Supervisor
from tests.router.conftest import (
    client_from,
    eventually,
    route_of,
    router_spec,
    router_status,
    stub_edge,
    url_of,
)

pytestmark = pytest.mark.asyncio(loop_scope="module")

TOKEN = "chaos-t0ken-for-tests"
FAULTED, SPARED = "ap-northeast-2", "sa-east-1"
CLIENT_OF = {FAULTED: "KR", SPARED: "BR"}
NO_ACTIVE_CHECKS = ("--health-interval", "30")


@dataclass(frozen=True, slots=True, kw_only=True)
class Routers:
    armed: RunningChild
    modeled: RunningChild
    unarmed: RunningChild


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def routers(tmp_path_factory: pytest.TempPathFactory, geo_cache_dir: Path) -> AsyncIterator[Routers]:
    base = tmp_path_factory.mktemp("router-faults")
    async with (
        stub_edge(FAULTED) as faulted,
        stub_edge(SPARED) as spared,
        Supervisor(base / "run") as supervisor,
    ):
        edges = ("--edge", f"{FAULTED}={faulted}", "--edge", f"{SPARED}={spared}", *NO_ACTIVE_CHECKS)
        token = ("--admin-token", TOKEN)
        armed, modeled, unarmed = await supervisor.start_group(
            [
                router_spec(geo_cache_dir, *edges, *token, "--wan", "off", name="router-armed"),
                dataclasses.replace(  # the token from the environment this time
                    router_spec(geo_cache_dir, *edges, "--wan", "model", name="router-modeled"),
                    env={"EDGE_ROUTER_ADMIN_TOKEN": TOKEN},
                ),
                router_spec(geo_cache_dir, *edges, name="router-unarmed"),
            ]
        )
        yield Routers(armed=armed, modeled=modeled, unarmed=unarmed)


@pytest_asyncio.fixture(loop_scope="module")
async def healed(routers: Routers) -> AsyncIterator[Routers]:
    """The routers with no fault set, before and after the test."""
    for router in (routers.armed, routers.modeled):
        await admin(router, "DELETE", "/_router/faults")
    yield routers
    for router in (routers.armed, routers.modeled):
        await admin(router, "DELETE", "/_router/faults")


async def admin(
    router: RunningChild,
    method: str,
    path: str,
    body: Any = None,
    *,
    token: str | None = TOKEN,
    raw: bytes | None = None,
) -> tuple[int, Any, Mapping[str, str]]:
    headers = {} if token is None else {"authorization": f"Bearer {token}"}
    data = raw if raw is not None else None if body is None else json.dumps(body).encode()
    async with (
        aiohttp.ClientSession() as client,
        client.request(method, url_of(router) + path, data=data, headers=headers) as response,
    ):
        return response.status, await response.json(), response.headers


async def fetch(router: RunningChild, world: World, region: str) -> tuple[int, Any, float]:
    """A request from a client of ``region``'s country: status, JSON body, seconds taken."""
    started = time.monotonic()
    async with (
        client_from(world, CLIENT_OF[region]) as client,
        client.get(url_of(router) + "/page") as response,
    ):
        body = await response.json()
        assert route_of(response)["region"] == region
    return response.status, body, time.monotonic() - started


async def metric(router: RunningChild, name: str, region: str) -> float:
    async with aiohttp.ClientSession() as client, client.get(url_of(router) + "/metrics") as response:
        text = await response.text()
    prefix = f'{name}{{region="{region}"}} '
    lines = [line for line in text.splitlines() if line.startswith(prefix)]
    return float(lines[0].removeprefix(prefix)) if lines else 0.0


async def fast_requests(router: RunningChild) -> int:
    count: int = (await router_status(router))["fast_path"]["requests_total"]
    return count


# Who may inject faults.


async def test_without_an_admin_token_fault_injection_is_disabled(healed: Routers) -> None:
    for method, path, body in [
        ("GET", "/_router/faults", None),
        ("PUT", f"/_router/faults/{FAULTED}", {"loss": 0.5}),
        ("DELETE", "/_router/faults", None),
    ]:
        status, answer, _ = await admin(healed.unarmed, method, path, body)
        assert status == 403, (method, path)
        assert answer == {
            "error": "forbidden",
            "message": "fault injection is disabled: start the router with --admin-token",
        }
    assert (await router_status(healed.unarmed))["faults"] == []


@pytest.mark.parametrize(
    ("token", "message"),
    [(None, "missing credentials"), ("not-the-token", "wrong admin token")],
)
async def test_a_missing_or_wrong_token_is_401(healed: Routers, token: str | None, message: str) -> None:
    status, answer, headers = await admin(
        healed.armed, "PUT", f"/_router/faults/{FAULTED}", {"latency_ms": 500}, token=token
    )
    assert status == 401
    assert answer["error"] == "unauthorized"
    assert message in answer["message"]
    assert headers["www-authenticate"].startswith("Bearer")
    assert (await router_status(healed.armed))["faults"] == []


# What may be asked.


@pytest.mark.parametrize(
    ("path", "raw", "message"),
    [
        (f"/_router/faults/{FAULTED}", b"latency=200", "the body is not JSON"),
        (f"/_router/faults/{FAULTED}", b'{"loss": 1}', "loss must be a ratio within [0, 1)"),
        (f"/_router/faults/{FAULTED}", b'{"latency_ms": -5}', "latency_ms must be within [0, 60000]"),
        (f"/_router/faults/{FAULTED}", b'{"loss": 0.1, "for_s": -1}', "for_s must be a positive number"),
        (f"/_router/faults/{FAULTED}", b'{"delay_ms": 100}', "unknown field 'delay_ms'"),
        ("/_router/faults/mars-1", b'{"loss": 0.1}', "unknown region 'mars-1': the world's regions are "),
    ],
)
async def test_a_bad_fault_is_400_saying_what_was_wrong(
    healed: Routers, world: World, path: str, raw: bytes, message: str
) -> None:
    status, answer, _ = await admin(healed.armed, "PUT", path, raw=raw)
    assert status == 400
    assert answer["error"] == "bad_request"
    assert message in answer["message"]
    if "unknown region" in message:
        assert all(region.id in answer["message"] for region in world.regions)
    assert (await router_status(healed.armed))["faults"] == []


async def test_fault_paths_answer_only_their_methods(healed: Routers) -> None:
    status, answer, headers = await admin(healed.armed, "POST", "/_router/faults", {"loss": 0.1})
    assert (status, answer["error"]) == (405, "method_not_allowed")
    assert headers["allow"] == "DELETE, GET, HEAD"
    status, _, headers = await admin(healed.armed, "DELETE", "/_router/status")
    assert (status, headers["allow"]) == (405, "GET, HEAD")


# Setting, listing, expiry, healing.


async def test_a_fault_is_listed_replaced_and_expires_on_its_own(healed: Routers) -> None:
    router = healed.armed
    path = f"/_router/faults/{FAULTED}"
    status, first, _ = await admin(router, "PUT", path, {"latency_ms": 10, "loss": 0.05})
    assert status == 200
    assert first["replaced"] is None
    assert first["fault"]["for_s"] is None  # until cleared
    status, second, _ = await admin(router, "PUT", path, {"latency_ms": 20, "for_s": 1.0})
    assert status == 200
    assert second["replaced"]["fault_id"] == first["fault"]["fault_id"]
    status, listing, _ = await admin(router, "GET", "/_router/faults")
    assert status == 200
    [listed] = listing["faults"]
    assert {key: listed[key] for key in ("region", "latency_ms", "loss", "for_s")} == {
        "region": FAULTED,
        "latency_ms": 20.0,
        "loss": 0.0,
        "for_s": 1.0,
    }
    assert 0 < listed["remaining_s"] <= 1.0
    assert listed["fault_id"] == second["fault"]["fault_id"] != first["fault"]["fault_id"]
    assert [fault["fault_id"] for fault in (await router_status(router))["faults"]] == [listed["fault_id"]]

    async def expired() -> bool:
        _, listing, _ = await admin(router, "GET", "/_router/faults")
        return not listing["faults"]

    waited = await eventually(expired, within_s=5, what="the fault expires")
    assert waited >= 0.5
    assert (await router_status(router))["faults"] == []


async def test_healing_one_region_or_all(healed: Routers) -> None:
    router = healed.armed
    for region in (FAULTED, SPARED):
        assert (await admin(router, "PUT", f"/_router/faults/{region}", {"latency_ms": 5}))[0] == 200
    status, answer, _ = await admin(router, "DELETE", f"/_router/faults/{SPARED}")
    assert status == 200
    assert [fault["region"] for fault in answer["healed"]] == [SPARED]
    assert [fault["region"] for fault in (await router_status(router))["faults"]] == [FAULTED]
    status, answer, _ = await admin(router, "DELETE", f"/_router/faults/{SPARED}")
    assert (status, answer) == (200, {"healed": []})  # healing a healthy region changes nothing
    status, answer, _ = await admin(router, "DELETE", "/_router/faults")
    assert [fault["region"] for fault in answer["healed"]] == [FAULTED]
    assert (await router_status(router))["faults"] == []
    status, answer, _ = await admin(router, "DELETE", "/_router/faults/mars-1")
    assert status == 400
    assert "unknown region 'mars-1'" in answer["message"]


# What clients feel.


async def test_a_faulted_region_is_slower_by_the_extra_latency_each_way(
    healed: Routers, world: World
) -> None:
    router = healed.modeled  # on top of the modeled WAN delay
    status, _, _ = await admin(router, "PUT", f"/_router/faults/{FAULTED}", {"latency_ms": 150})
    assert status == 200
    before = await metric(router, "router_wan_fault_requests_total", FAULTED)
    status, body, took = await fetch(router, world, FAULTED)
    assert (status, body["name"]) == (200, FAULTED)
    assert took >= 0.3  # 150 ms there and 150 ms back
    assert await metric(router, "router_wan_fault_requests_total", FAULTED) == before + 1
    status, _, took = await fetch(router, world, SPARED)
    assert status == 200
    assert took < 0.3
    await admin(router, "DELETE", f"/_router/faults/{FAULTED}")
    status, _, took = await fetch(router, world, FAULTED)
    assert status == 200
    assert took < 0.3


async def test_near_total_loss_fails_requests_with_504_and_spares_other_regions(
    healed: Routers, world: World
) -> None:
    router = healed.armed
    # A lower minimum RTO (as `ip route ... rto_min` sets) makes TCP give up in ~0.6 s, not ~25 s.
    fault = {"loss": 0.999, "rto_min_ms": 5}
    status, answer, _ = await admin(router, "PUT", f"/_router/faults/{FAULTED}", fault)
    assert status == 200
    fault_id = answer["fault"]["fault_id"]
    results = await asyncio.gather(*(fetch(router, world, FAULTED) for _ in range(3)))
    for status, body, took in results:
        assert status == 504
        assert body["error"] == "wan_loss"
        assert body["message"].startswith("emulated packet loss: ")
        assert body["message"].endswith("gave up after 6 retransmissions")
        assert (body["region"], body["fault_id"]) == (FAULTED, fault_id)
        assert took >= 5 * (2**7 - 1) / 1000  # every retransmission timeout waited out
    assert await metric(router, "router_wan_loss_failures_total", FAULTED) == 3
    assert await metric(router, "router_wan_fault_requests_total", FAULTED) >= 3
    status, body, _ = await fetch(router, world, SPARED)
    assert (status, body["name"]) == (200, SPARED)
    assert await metric(router, "router_wan_loss_failures_total", SPARED) == 0


async def test_the_fast_path_does_not_bypass_a_fault(healed: Routers, world: World) -> None:
    router = healed.armed
    assert (await router_status(router))["fast_path"]["enabled"] is True
    await fetch(router, world, FAULTED)  # leaves a kept-alive connection to the node free
    before = await fast_requests(router)
    status, _, took = await fetch(router, world, FAULTED)
    assert status == 200
    assert await fast_requests(router) == before + 1  # no fault: the fast path
    await admin(router, "PUT", f"/_router/faults/{FAULTED}", {"latency_ms": 200})
    status, _, took = await fetch(router, world, FAULTED)
    assert status == 200
    assert took >= 0.4
    status, _, took = await fetch(router, world, SPARED)  # a fault anywhere: every request is checked
    assert (status, took < 0.4) == (200, True)
    assert await fast_requests(router) == before + 1
    await admin(router, "DELETE", "/_router/faults")
    status, _, took = await fetch(router, world, FAULTED)
    assert (status, took < 0.4) == (200, True)
    assert await fast_requests(router) == before + 2
