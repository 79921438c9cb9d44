"""The node's outbound fetcher in-process: through the node's HTTP cache (a handler and the
origin route's clients share one entry), CLIENT spans with traceparent sent on, counters;
called from a worker thread as a guest's host call is, while the loop stays free."""

from __future__ import annotations

import asyncio
import ipaddress
import random
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from opentelemetry.proto.trace.v1 import trace_pb2
from prometheus_client import CollectorRegistry

from edge_node.__main__ import parse_config
from edge_node.app import LoadedApp
from edge_node.cache_flow import EdgeCache
from edge_node.exchange import Exchange
from edge_node.metrics import AppFigures
from edge_node.outbound import NodeOutbound, OutboundMetrics
from httpcache.store import MemoryTier, TieredCache
from manifest import parse_manifest
from tracing.lean import RequestTrace
from wasm_host.outbound import OutboundError, OutboundRequest, OutboundResponse
from wasm_host.outbound_policy import Allowed, check_url, parse_grants


@dataclass
class Origin:
    hits: dict[str, int] = field(default_factory=dict)
    traceparents: list[str] = field(default_factory=list)
    gate: asyncio.Event = field(default_factory=asyncio.Event)
    slow_asked: asyncio.Event = field(default_factory=asyncio.Event)

    async def handle(self, request: web.Request) -> web.Response:
        self.hits[request.path] = self.hits.get(request.path, 0) + 1
        self.traceparents.append(request.headers.get("traceparent", ""))
        if request.path == "/shop/slow":
            self.slow_asked.set()
            await self.gate.wait()
        if request.path == "/shop/nocache":
            return web.Response(body=b"fresh every time", headers={"cache-control": "no-store"})
        return web.Response(
            body=f"weather {request.query_string}".encode(), headers={"cache-control": "max-age=60"}
        )


@dataclass
class Node:
    outbound: NodeOutbound
    origin: Origin
    origin_url: str
    registry: CollectorRegistry


@dataclass
class ListSink:
    spans: list[bytes] = field(default_factory=list)

    def add(self, span: bytes) -> None:
        self.spans.append(span)


@pytest.fixture
async def node() -> AsyncIterator[Node]:
    origin = Origin()
    application = web.Application()
    application.router.add_route("*", "/{tail:.*}", origin.handle)
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    origin_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
    registry = CollectorRegistry()
    cache = EdgeCache(TieredCache(MemoryTier(max_bytes=1 << 20, max_entry_bytes=1 << 16)), clock=time.time)
    async with aiohttp.ClientSession() as session:
        outbound = NodeOutbound(session=session, cache=cache, metrics=OutboundMetrics(registry))
        yield Node(outbound=outbound, origin=origin, origin_url=origin_url, registry=registry)
    await runner.cleanup()


def _exchange(origin_url: str, sink: ListSink | None = None) -> Exchange:
    manifest = parse_manifest(
        f'[app]\nname = "w"\nversion = "1"\n[[route]]\npath = "/shop/..."\norigin = "{origin_url}"\n',
        Path("."),
    )
    app = LoadedApp(manifest=manifest, modules={}, header=b"w@1", figures=AppFigures("w", "1"))
    exchange = Exchange(
        method="GET", path="/weather", query="", headers=[], body=b"", peer="127.0.0.1", app=app
    )
    if sink is not None:
        exchange.trace = RequestTrace(trace_id=bytes(range(16)), parent=None, rng=random.Random(7), sink=sink)
    return exchange


def _request(url: str, grants: list[str], *, bypass: bool = False) -> OutboundRequest:
    decision = check_url(url, parse_grants(grants))
    assert isinstance(decision, Allowed), decision
    return OutboundRequest(
        module="weather",
        method="GET",
        target=decision.target,
        headers=(("accept", "text/plain"),),
        body=b"",
        bypass_cache=bypass,
        max_body_bytes=1 << 20,
    )


async def _on_worker(
    node: Node, exchange: Exchange, request: OutboundRequest, timeout_s: float = 2.0
) -> OutboundResponse:
    """Call the fetcher from a worker thread, as a guest's host call does."""
    fetcher = node.outbound.for_exchange(exchange)
    return await asyncio.to_thread(fetcher.fetch, request, timeout_s)


def _sample(node: Node, name: str, **labels: str) -> float:
    return node.registry.get_sample_value(name, labels) or 0.0


async def test_self_requests_go_through_the_cache_shared_with_the_route(node: Node) -> None:
    exchange = _exchange(node.origin_url)
    request = _request("/shop/weather?country=KR", ["http://self"])
    first = await _on_worker(node, exchange, request)
    second = await _on_worker(node, exchange, request)
    assert first.body == second.body == b"weather country=KR"
    assert (first.cache_status, second.cache_status) == ("MISS", "HIT")
    assert ("x-cache", "HIT") in second.headers
    assert node.origin.hits == {"/shop/weather": 1}
    # The entry is the origin route's own: a client's request for the same path hits it.
    _, answer, status = node.outbound.cache.lookup("GET", "/shop/weather", "country=KR", [], origin=True)
    assert answer is not None
    assert status == "HIT"
    assert _sample(node, "edge_outbound_requests_total", module="weather", result="HIT") == 1
    assert _sample(node, "edge_outbound_bytes_total", module="weather", direction="received") == 2 * len(
        first.body
    )


async def test_other_urls_are_cached_under_their_full_url_unless_bypassed(node: Node) -> None:
    exchange = _exchange(node.origin_url)
    grants = [node.origin_url]
    for _ in range(2):
        await _on_worker(node, exchange, _request(node.origin_url + "/shop/weather?country=JP", grants))
    assert node.origin.hits == {"/shop/weather": 1}
    bypassed = await _on_worker(
        node, exchange, _request(node.origin_url + "/shop/weather?country=JP", grants, bypass=True)
    )
    assert bypassed.cache_status is None
    assert node.origin.hits == {"/shop/weather": 2}


async def test_a_self_path_must_be_an_origin_route(node: Node) -> None:
    with pytest.raises(OutboundError) as caught:
        await _on_worker(node, _exchange(node.origin_url), _request("/weather", ["http://self"]))
    assert caught.value.reason == "self-not-origin"


async def test_each_request_is_a_client_span_whose_id_the_origin_sees(node: Node) -> None:
    sink = ListSink()
    exchange = _exchange(node.origin_url, sink)
    await _on_worker(node, exchange, _request("/shop/weather?country=KR", ["http://self"]))
    await _on_worker(node, exchange, _request("/shop/weather?country=KR", ["http://self"]))
    spans = [trace_pb2.Span.FromString(raw) for raw in sink.spans]
    assert [span.name for span in spans] == ["GET outbound", "GET outbound"]
    assert all(span.kind == trace_pb2.Span.SPAN_KIND_CLIENT for span in spans)
    assert all(span.trace_id == bytes(range(16)) for span in spans)
    assert exchange.trace is not None
    assert all(span.parent_span_id == exchange.trace.span_id for span in spans)
    attributes = [{a.key: a.value for a in span.attributes} for span in spans]
    assert attributes[0]["edgecdn.cache"].string_value == "MISS"
    assert attributes[1]["edgecdn.cache"].string_value == "HIT"
    assert attributes[0]["url.full"].string_value == node.origin_url + "/shop/weather?country=KR"
    # Only the miss went upstream, naming its own span as the parent.
    assert node.origin.traceparents == [f"00-{bytes(range(16)).hex()}-{spans[0].span_id.hex()}-01"]


async def test_a_blocked_fetch_holds_its_worker_not_the_loop(node: Node) -> None:
    exchange = _exchange(node.origin_url)
    pending = asyncio.create_task(
        _on_worker(node, exchange, _request("/shop/slow", ["http://self"]), timeout_s=5.0)
    )
    await node.origin.slow_asked.wait()
    # The loop serves other work meanwhile: other fetches complete while the slow one waits.
    done = await _on_worker(node, exchange, _request("/shop/weather?country=DE", ["http://self"]))
    assert done.status == 200
    assert not pending.done()
    node.origin.gate.set()
    assert (await pending).status == 200


async def test_a_fetch_is_bounded_by_its_timeout(node: Node) -> None:
    with pytest.raises(OutboundError) as caught:
        await _on_worker(
            node, _exchange(node.origin_url), _request("/shop/slow", ["http://self"]), timeout_s=0.1
        )
    assert caught.value.reason == "timeout"
    assert _sample(node, "edge_outbound_requests_total", module="weather", result="error") == 1
    node.origin.gate.set()


async def test_the_fetcher_refuses_to_wait_on_the_loop_thread(node: Node) -> None:
    fetcher = node.outbound.for_exchange(_exchange(node.origin_url))
    assert threading.get_ident() == node.outbound.loop_thread
    with pytest.raises(OutboundError, match="event loop"):
        fetcher.fetch(_request("/shop/weather", ["http://self"]), 1.0)


async def test_refusals_are_counted_and_traced(node: Node) -> None:
    sink = ListSink()
    fetcher = node.outbound.for_exchange(_exchange(node.origin_url, sink))
    await asyncio.to_thread(fetcher.refused, "weather", "http://evil.org/", "not-allowed", "not in the list")
    await asyncio.sleep(0)  # the span is emitted on the loop
    assert _sample(node, "edge_outbound_refusals_total", module="weather", reason="not-allowed") == 1
    (span,) = [trace_pb2.Span.FromString(raw) for raw in sink.spans]
    assert span.name == "outbound refused"
    assert span.status.message == "not in the list"


def test_the_operator_flag_reaches_the_config() -> None:
    config, _ = parse_config(
        [
            "--region",
            "ap-northeast-2",
            "--allow-outbound-network",
            "169.254.10.0/24",
            "--allow-outbound-network",
            "metadata",
        ]
    )
    allowance = config.allow_outbound_networks
    assert allowance.allows("169.254.10.7", ipaddress.ip_address("169.254.10.7"))
    assert allowance.allows("metadata", None)
    assert not allowance.allows("169.254.169.254", ipaddress.ip_address("169.254.169.254"))
