"""Without --mqtt the GatewayService refuses clearly (FAILED_PRECONDITION, not UNIMPLEMENTED)."""

from __future__ import annotations

import grpc
import pytest

from protos.edgecdn.v1 import gateways_pb2, gateways_pb2_grpc
from tests.control_plane.support import LiveControlPlane


async def test_list_without_broker(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    stub = gateways_pb2_grpc.GatewayServiceStub(channel)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.ListGateways(gateways_pb2.ListGatewaysRequest(), metadata=live.md("viewer"), timeout=5)
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert caught.value.details() == "no MQTT broker configured (--mqtt)"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SendGatewayCommand(
            gateways_pb2.GatewayCommandRequest(), metadata=live.md("operator"), timeout=5
        )
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
