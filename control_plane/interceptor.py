"""The grpc.aio server interceptors of our own: bearer-token auth, and RPC counting.

Authentication comes before everything else a caller can learn: a call without a valid token
is UNAUTHENTICATED whatever its method, so method names cannot be probed (an unknown method
answers UNIMPLEMENTED only to a known token). Health and reflection stay open.

``MetricsInterceptor`` is the outermost one: it sees every call's final status, refusals
by the others included, and counts it by method and code (``control_plane.metrics``).

Both decide per call but build their handlers once per method (``HandlerCache``): the
counting wrapper of a method, and the refusal of a (method, reason), are the same for every
call, so they are made on the first call and reused.
"""

from __future__ import annotations

import inspect
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc

from control_plane.auth import Denial, TokenTable
from control_plane.grpc_handlers import Handler, HandlerCache, outcome_code, rewrap
from control_plane.metrics import UNKNOWN_METHOD, ControlPlaneMetrics

logger = logging.getLogger(__name__)


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
        # Refusals of a known method, by (method, code, message): a bounded set (the methods
        # times the few reasons), unlike refusals of unknown methods, which are made per call.
        self._refusals: dict[tuple[str, grpc.StatusCode, str], tuple[Handler, Handler]] = {}

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
        if handler is None:
            return _denying(None, code, decision.message)
        key = (method, code, decision.message)
        found = self._refusals.get(key)
        if found is None or found[0] is not handler:
            found = self._refusals[key] = (handler, _denying(handler, code, decision.message))
        return found[1]


class MetricsInterceptor(grpc.aio.ServerInterceptor):
    """Counts every RPC as it starts (by method) and as it finishes (by method and status
    code); times unary ones."""

    def __init__(self, metrics: ControlPlaneMetrics) -> None:
        self._metrics = metrics
        self._handlers = HandlerCache()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:  # grpc answers UNIMPLEMENTED; counted under one name
            self._metrics.started(UNKNOWN_METHOD)
            self._metrics.finished(UNKNOWN_METHOD, grpc.StatusCode.UNIMPLEMENTED.name, None)
            return None
        method = handler_call_details.method
        return self._handlers.wrapped(method, handler, lambda found: _counted(found, self._metrics, method))


def _counted(handler: Handler, metrics: ControlPlaneMetrics, method: str) -> Handler:
    def finish(context: Any, error: BaseException | None, started: float | None) -> None:
        seconds = None if started is None else time.perf_counter() - started
        metrics.finished(method, outcome_code(context, error).name, seconds)

    def wrap(behavior: Any, *, timed: bool) -> Any:
        # grpc.aio runs an async generator and a coroutine differently: keep the kind.
        if inspect.isasyncgenfunction(behavior):

            async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
                metrics.started(method)
                error: BaseException | None = None
                try:
                    async for response in behavior(request, context):
                        yield response
                except BaseException as exc:
                    error = exc
                    raise
                finally:
                    finish(context, error, None)

            return streaming

        async def single(request: Any, context: Any) -> Any:
            metrics.started(method)
            started = time.perf_counter() if timed else None
            error: BaseException | None = None
            try:
                return await behavior(request, context)
            except BaseException as exc:
                error = exc
                raise
            finally:
                finish(context, error, started)

        return single

    return rewrap(handler, lambda behavior, kind: wrap(behavior, timed=kind == "unary_unary"))
