"""A real gRPC (HTTP/2) stream through the relay: it lives on, a partition breaks it with
UNAVAILABLE, and after the heal the client's own reconnect gets through again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from tests.faultrelay.support import admin_client, partition, relay_config, relay_in_process

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
FAST_RECONNECT = [("grpc.initial_reconnect_backoff_ms", 100), ("grpc.max_reconnect_backoff_ms", 200)]


@pytest.fixture
async def upstream() -> AsyncIterator[tuple[int, health.aio.HealthServicer]]:
    server = grpc.aio.server()
    servicer = health.aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    await servicer.set("", SERVING)
    try:
        yield port, servicer
    finally:
        await server.stop(grace=None)


async def test_a_grpc_stream_through_the_relay(upstream: tuple[int, health.aio.HealthServicer]) -> None:
    port, servicer = upstream
    async with (
        relay_in_process(relay_config({"cp": f"0:127.0.0.1:{port}"})) as relay,
        admin_client(relay) as admin,
        grpc.aio.insecure_channel(relay.addresses["cp"], options=FAST_RECONNECT) as channel,
    ):
        stub = health_pb2_grpc.HealthStub(channel)
        watch = stub.Watch(health_pb2.HealthCheckRequest(service=""))
        assert (await asyncio.wait_for(watch.read(), 10)).status == SERVING
        await asyncio.sleep(0.3)  # a long-lived stream stays up
        await servicer.set("", NOT_SERVING)
        assert (await asyncio.wait_for(watch.read(), 5)).status == NOT_SERVING

        await partition(admin, "cp", for_s=30)
        with pytest.raises(grpc.aio.AioRpcError) as broken:
            await asyncio.wait_for(watch.read(), 5)
        assert broken.value.code() == grpc.StatusCode.UNAVAILABLE
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=0.5)
        assert refused.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)

        async with admin.delete("/faults") as response:
            assert response.status == 200
        answer = await stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=5, wait_for_ready=True)
        assert answer.status == NOT_SERVING
