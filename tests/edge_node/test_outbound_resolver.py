"""Names that resolve to a refused address: caught after resolution, with the real resolver
(``localhost`` stands for a name pointing at a metadata service: the refused networks are
a parameter, so loopback plays the part)."""

from __future__ import annotations

import ipaddress
import time
from collections.abc import AsyncIterator

import aiohttp
import pytest
from aiohttp import web
from prometheus_client import CollectorRegistry

from edge_node.cache_flow import EdgeCache
from edge_node.exchange import Exchange
from edge_node.outbound import NodeOutbound, OutboundMetrics
from edge_node.outbound_resolver import BlockedAddressError, GuardedResolver
from httpcache.store import MemoryTier, TieredCache
from wasm_host.outbound import OutboundError, OutboundRequest
from wasm_host.outbound_policy import Allowed, NetworkAllowance, check_url, parse_grants

LOOPBACK = (ipaddress.ip_network("127.0.0.0/8"), ipaddress.ip_network("::1/128"))


async def test_a_name_resolving_to_a_refused_network_is_refused() -> None:
    resolver = GuardedResolver(blocked=LOOPBACK)
    with pytest.raises(BlockedAddressError, match=r"localhost resolves to 127\.0\.0\.1"):
        await resolver.resolve("localhost", 80)
    await resolver.close()


async def test_the_operator_allowance_and_ordinary_answers_pass() -> None:
    allowed = GuardedResolver(NetworkAllowance.parse(["127.0.0.0/8"]), blocked=LOOPBACK)
    assert (await allowed.resolve("localhost", 80))[0]["host"] == "127.0.0.1"
    await allowed.close()
    default = GuardedResolver()  # link-local and metadata only: loopback is fine
    assert (await default.resolve("localhost", 80))[0]["host"] == "127.0.0.1"
    await default.close()


@pytest.fixture
async def origin_url() -> AsyncIterator[str]:
    application = web.Application()

    async def secret(request: web.Request) -> web.Response:
        return web.Response(text="secret")

    application.router.add_get("/x", secret)
    runner = web.AppRunner(application)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    yield f"http://localhost:{runner.addresses[0][1]}"
    await runner.cleanup()


async def test_the_guest_sees_blocked_address(origin_url: str) -> None:
    connector = aiohttp.TCPConnector(resolver=GuardedResolver(blocked=LOOPBACK))
    cache = EdgeCache(TieredCache(MemoryTier(max_bytes=1 << 20, max_entry_bytes=1 << 16)), clock=time.time)
    async with aiohttp.ClientSession(connector=connector) as session:
        node = NodeOutbound(session=session, cache=cache, metrics=OutboundMetrics(CollectorRegistry()))
        decision = check_url(origin_url + "/x", parse_grants(["http://localhost:*"]))
        assert isinstance(decision, Allowed)
        request = OutboundRequest(
            module="m",
            method="GET",
            target=decision.target,
            headers=(),
            body=b"",
            bypass_cache=True,
            max_body_bytes=100,
        )
        exchange = Exchange(method="GET", path="/", query="", headers=[], body=b"", peer="127.0.0.1")
        with pytest.raises(OutboundError) as caught:
            await node.fetch(request, exchange, 2.0)
    assert caught.value.reason == "blocked-address"
    assert "localhost resolves to" in caught.value.message
