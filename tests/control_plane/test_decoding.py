"""Malformed protobufs get INVALID_ARGUMENT naming the message type; the server keeps serving."""

from __future__ import annotations

import grpc
import pytest

from protos.edgecdn.v1 import apps_pb2, apps_pb2_grpc
from tests.control_plane.support import LiveControlPlane

GARBAGE = b"\xff\xff\xff\xff not a protobuf"


def raw(data: bytes) -> bytes:
    return data


async def test_malformed_unary_request(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    call = channel.unary_unary(
        "/edgecdn.v1.AppService/GetApp", request_serializer=raw, response_deserializer=raw
    )
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call(GARBAGE, metadata=live.md("operator"), timeout=5)
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert failure.value.details() == "malformed edgecdn.v1.GetAppRequest: Wire format was corrupt"
    # Everyone else is still served.
    with pytest.raises(grpc.aio.AioRpcError) as not_found:
        await apps_pb2_grpc.AppServiceStub(channel).GetApp(
            apps_pb2.GetAppRequest(name="nope"), metadata=live.md("operator"), timeout=5
        )
    assert not_found.value.code() == grpc.StatusCode.NOT_FOUND


async def test_malformed_message_on_a_node_session(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    call = channel.stream_stream(
        "/edgecdn.v1.NodeSessionService/Connect", request_serializer=raw, response_deserializer=raw
    )(metadata=live.md("node"), timeout=5)
    await call.write(GARBAGE)
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        async for _ in call:
            pass
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "malformed edgecdn.v1.NodeMessage" in (failure.value.details() or "")


async def test_malformed_upload_chunk_stream(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    call = channel.stream_unary(
        "/edgecdn.v1.ModuleService/UploadModule", request_serializer=raw, response_deserializer=raw
    )(metadata=live.md("operator"), timeout=5)
    await call.write(GARBAGE)
    await call.done_writing()
    with pytest.raises(grpc.aio.AioRpcError) as failure:
        await call
    assert failure.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "UploadModuleRequest" in (failure.value.details() or "")
