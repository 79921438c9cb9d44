"""Authentication comes first: without a valid token, no method name can be probed."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cpclient import auth_metadata
from tests.control_plane.support import LiveControlPlane

UNKNOWN = ["/edgecdn.v1.SecretService/Probe", "/edgecdn.v1.ModuleService/NoSuchMethod", "/nothing"]
WITHOUT_VALID_TOKEN = [(), auth_metadata("not-a-real-token"), (("authorization", "Basic abc"),)]


async def unary(channel: grpc.aio.Channel, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
    probe: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(method)
    await probe(b"", metadata=metadata, timeout=5)


async def streaming(channel: grpc.aio.Channel, method: str, metadata: tuple[tuple[str, str], ...]) -> None:
    probe: grpc.aio.StreamStreamMultiCallable[bytes, bytes] = channel.stream_stream(method)
    call = probe(metadata=metadata, timeout=5)
    await call.read()


@pytest.mark.parametrize("method", UNKNOWN)
@pytest.mark.parametrize("metadata", WITHOUT_VALID_TOKEN)
@pytest.mark.parametrize("kind", [unary, streaming])
async def test_an_unknown_method_without_a_valid_token_is_unauthenticated(
    live: LiveControlPlane,
    channel: grpc.aio.Channel,
    method: str,
    metadata: tuple[tuple[str, str], ...],
    kind: object,
) -> None:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await kind(channel, method, metadata)  # type: ignore[operator]
    assert caught.value.code() == grpc.StatusCode.UNAUTHENTICATED


async def test_a_known_caller_learns_that_a_method_does_not_exist(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    for role in ("operator", "viewer"):
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await unary(channel, UNKNOWN[0], live.md(role))
        assert caught.value.code() == grpc.StatusCode.UNIMPLEMENTED


async def test_health_stays_open(channel: grpc.aio.Channel) -> None:
    response = await health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert response.status == health_pb2.HealthCheckResponse.SERVING
