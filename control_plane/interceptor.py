"""The grpc.aio server interceptors of our own: bearer-token auth, RPC counting, and the
closing of streaming handlers grpc leaves open.

Authentication comes before everything else a caller can learn: a call without a valid token
is UNAUTHENTICATED whatever its method, so method names cannot be probed (an unknown method
answers UNIMPLEMENTED only to a known token). Health and reflection stay open.

``MetricsInterceptor`` sees every call's final status, refusals by the others included, and
counts it by method and code (``control_plane.metrics``). Only ``StreamClosingInterceptor``
is outside it: it refuses nothing, and closes every streaming handler once its call is done.

They decide per call but build their handlers once per method (``HandlerCache``): the
counting and closing wrappers of a method, and the refusal of a (method, reason), are the
same for every call, so they are made on the first call and reused.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
import types
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
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
                    async with aclosing(behavior(request, context)) as responses:
                        async for response in responses:
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


class StreamClosingInterceptor(grpc.aio.ServerInterceptor):
    """Closes a streaming handler when its call is done, if it is still open.

    grpc.aio iterates a streaming handler with ``async for`` and never closes it: when a write
    fails (the peer cancelled while the write waited on flow control, or while its completion
    was late under load), grpc's task ends and leaves the handler suspended at its ``yield``,
    its ``finally`` unrun until the garbage collector finds it, which a reference cycle puts
    off for as long as it likes. A node session ends (the node shown DISCONNECTED) in such a
    ``finally``; metrics and spans are finished in others. The outermost interceptor: every
    wrapper below closes what it wraps (``aclosing``), so closing the one below closes all."""

    def __init__(self) -> None:
        self._handlers = HandlerCache()
        # aclose() tasks in flight: the loop keeps only a weak reference to a task.
        self._closing: set[asyncio.Task[None]] = set()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None or not handler.response_streaming:
            return handler
        return self._handlers.wrapped(handler_call_details.method, handler, self._closed_with_the_call)

    def _closed_with_the_call(self, handler: Handler) -> Handler:
        def wrap(behavior: Any, kind: str) -> Any:
            if not inspect.isasyncgenfunction(behavior):
                return behavior  # a coroutine handler (reader/writer API): grpc awaits it to the end

            async def streaming(request: Any, context: Any) -> AsyncIterator[Any]:
                responses = behavior(request, context)
                context.add_done_callback(lambda _: self._close_if_open(responses))
                # This relay itself may be left open by grpc; it holds nothing to release.
                async with aclosing(responses):
                    async for response in responses:
                        yield response

            return streaming

        return rewrap(handler, wrap)

    def _close_if_open(self, responses: types.AsyncGeneratorType[Any, Any]) -> None:
        if responses.ag_frame is None:  # finished: the call ended the usual way
            return
        task = asyncio.get_running_loop().create_task(responses.aclose(), name="close-abandoned-stream")
        self._closing.add(task)
        task.add_done_callback(self._closing.discard)
