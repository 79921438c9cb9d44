"""The operator's client of CacheService (edgectl cache purge): one purge, waited for.

It rides on an ``OperatorClient``'s channel and token, so edgectl opens one connection.
gRPC failures become ``ControlPlaneCallError`` as everywhere in cpclient.
"""

from __future__ import annotations

import grpc

from cpclient.errors import ControlPlaneCallError
from cpclient.operator import OperatorClient, describe_rpc_error
from protos.edgecdn.v1 import cache_pb2, cache_pb2_grpc

DEFAULT_WAIT_S = 5.0
# Beyond the purge's own wait for the nodes, time for the call itself.
CALL_SLACK_S = 10.0


class CacheClient:
    """CacheService calls over an open ``OperatorClient``."""

    def __init__(self, operator: OperatorClient) -> None:
        self.server = operator.server
        self._md = operator._md
        self._stub = cache_pb2_grpc.CacheServiceStub(operator._channel)

    async def purge(self, request: cache_pb2.PurgeCacheRequest) -> cache_pb2.PurgeCacheResponse:
        """Send the purge and wait for the nodes' report (bounded by the request's timeout)."""
        wait_s = request.timeout_seconds or DEFAULT_WAIT_S
        try:
            return await self._stub.PurgeCache(request, metadata=self._md, timeout=wait_s + CALL_SLACK_S)
        except grpc.aio.AioRpcError as exc:
            raise ControlPlaneCallError(describe_rpc_error(exc, self.server), code=exc.code().name) from exc
