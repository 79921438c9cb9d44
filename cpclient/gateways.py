"""The operator's client of GatewayService (edgectl gateways): list gateways, and send a
command whose per-gateway results stream back as they arrive.

It rides on an ``OperatorClient``'s channel and token, so edgectl opens one connection.
gRPC failures become ``ControlPlaneCallError`` as everywhere in cpclient.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence

import grpc

from cpclient.errors import ControlPlaneCallError
from cpclient.operator import CALL_TIMEOUT_S, OperatorClient, describe_rpc_error
from protos.edgecdn.v1 import gateways_pb2, gateways_pb2_grpc

# Beyond the command's own deadline, time for publishing and the last results to arrive.
STREAM_SLACK_S = 15.0
BROKER_DOWN = "not connected to the MQTT broker"


class GatewayClient:
    """GatewayService calls over an open ``OperatorClient``."""

    def __init__(self, operator: OperatorClient) -> None:
        self.server = operator.server
        # The operator client's channel and credentials: one connection per edgectl run.
        self._md = operator._md
        self._stub = gateways_pb2_grpc.GatewayServiceStub(operator._channel)

    def _error(self, exc: grpc.aio.AioRpcError) -> ControlPlaneCallError:
        details = exc.details() or ""
        if exc.code() == grpc.StatusCode.UNAVAILABLE and details.startswith(BROKER_DOWN):
            # The control plane answered: it is its broker that is away.
            return ControlPlaneCallError(details, code=exc.code().name)
        return ControlPlaneCallError(describe_rpc_error(exc, self.server), code=exc.code().name)

    async def list_gateways(self, regions: Sequence[str] = ()) -> gateways_pb2.ListGatewaysResponse:
        try:
            return await self._stub.ListGateways(
                gateways_pb2.ListGatewaysRequest(regions=list(regions)),
                metadata=self._md,
                timeout=CALL_TIMEOUT_S,
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def send_command(
        self, request: gateways_pb2.GatewayCommandRequest
    ) -> gateways_pb2.GatewayCommandResponse:
        """Every gateway's result at once."""
        deadline_s = request.deadline.ToTimedelta().total_seconds() or 10.0
        try:
            return await self._stub.SendGatewayCommand(
                request, metadata=self._md, timeout=deadline_s + STREAM_SLACK_S
            )
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc

    async def stream_command(
        self, request: gateways_pb2.GatewayCommandRequest
    ) -> AsyncIterator[gateways_pb2.GatewayCommandProgress]:
        """``started`` first, then one ``result`` per gateway as it arrives."""
        deadline_s = request.deadline.ToTimedelta().total_seconds() or 10.0
        call = self._stub.StreamGatewayCommand(
            request, metadata=self._md, timeout=deadline_s + STREAM_SLACK_S
        )
        try:
            async for progress in call:
                yield progress
        except grpc.aio.AioRpcError as exc:
            raise self._error(exc) from exc
