"""GatewayService adapter: without an MQTT broker every call is FAILED_PRECONDITION."""

from __future__ import annotations

from typing import Any

import grpc

from protos.edgecdn.v1 import gateways_pb2, gateways_pb2_grpc

NO_BROKER = "no MQTT broker configured (--mqtt)"


class UnconfiguredGatewayServicer(gateways_pb2_grpc.GatewayServiceServicer):
    """Served when the control plane runs without ``--mqtt``: a clear refusal, not UNIMPLEMENTED."""

    async def ListGateways(  # noqa: N802 (gRPC method name)
        self, request: gateways_pb2.ListGatewaysRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> gateways_pb2.ListGatewaysResponse:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NO_BROKER)

    async def SendGatewayCommand(  # noqa: N802 (gRPC method name)
        self, request: gateways_pb2.GatewayCommandRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> gateways_pb2.GatewayCommandResponse:
        await context.abort(grpc.StatusCode.FAILED_PRECONDITION, NO_BROKER)
