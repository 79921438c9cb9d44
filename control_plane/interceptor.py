"""The grpc.aio server interceptor that enforces bearer-token auth on every RPC.

Authentication comes before everything else a caller can learn: a call without a valid token
is UNAUTHENTICATED whatever its method, so method names cannot be probed (an unknown method
answers UNIMPLEMENTED only to a known token). Health and reflection stay open.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, TypeAlias

import grpc

from control_plane.auth import Denial, TokenTable

logger = logging.getLogger(__name__)

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"


def _metadata_value(details: grpc.HandlerCallDetails, key: str) -> str | None:
    for item in details.invocation_metadata or ():
        name, value = item
        if name == key:
            return value if isinstance(value, str) else value.decode()
    return None


def _denying(handler: Handler | None, code: grpc.StatusCode, message: str) -> Handler:
    """A handler of the same shape as ``handler`` that only aborts (any shape for an unknown
    method: the abort comes before any message is read, so a unary call gets it too)."""

    async def deny(request: Any, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        await context.abort(code, message)

    if handler is None or (handler.request_streaming and handler.response_streaming):
        return grpc.stream_stream_rpc_method_handler(deny)
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(deny)
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(deny)
    return grpc.unary_unary_rpc_method_handler(deny)


class AuthInterceptor(grpc.aio.ServerInterceptor):
    """Refuses calls without an acceptable ``authorization: Bearer <token>``."""

    def __init__(self, tokens: TokenTable) -> None:
        self._tokens = tokens

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        method = handler_call_details.method
        decision = self._tokens.decide(method, _metadata_value(handler_call_details, "authorization"))
        handler = await continuation(handler_call_details)
        if not isinstance(decision, Denial):
            return handler
        if handler is None and decision.kind == "forbidden":
            return None  # a known caller may learn that the method does not exist (UNIMPLEMENTED)
        logger.info("refused %s: %s", method, decision.message)
        code = (
            grpc.StatusCode.UNAUTHENTICATED
            if decision.kind == "unauthenticated"
            else grpc.StatusCode.PERMISSION_DENIED
        )
        return _denying(handler, code, decision.message)
