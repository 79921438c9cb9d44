"""Malformed requests are the caller's mistake: answer INVALID_ARGUMENT with what was wrong.

grpcio decodes requests before a servicer runs and reports a decode failure as UNKNOWN
with a Python exception repr. This interceptor takes decoding over: the wrapped handler
receives raw bytes, decodes them itself, and aborts with INVALID_ARGUMENT naming the
message type. Streams are decoded message by message, so one bad message ends only its
own call; the server keeps serving everyone else. Each method's decoding handler is built
once (``HandlerCache``), not on every call.
"""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import aclosing
from typing import Any, TypeAlias

import grpc
from google.protobuf.message import DecodeError

from control_plane.grpc_handlers import HandlerCache

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
Context: TypeAlias = "grpc.aio.ServicerContext[Any, Any]"
Decoder = Callable[[bytes], Any]


def _type_name(decode: Decoder) -> str:
    message_class = getattr(decode, "__self__", None)
    descriptor = getattr(message_class, "DESCRIPTOR", None)
    return str(getattr(descriptor, "full_name", "request"))


async def _refuse(decode: Decoder, error: DecodeError, context: Context) -> None:
    # protobuf says "Error parsing message with type 'X': <reason>"; keep the reason.
    reason = str(error).rsplit(": ", 1)[-1]
    await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed {_type_name(decode)}: {reason}")


async def _decode(decode: Decoder, raw: bytes, context: Context) -> Any:
    try:
        return decode(raw)
    except DecodeError as exc:
        await _refuse(decode, exc, context)


async def _decoded_stream(
    decode: Decoder, raw_messages: AsyncIterator[bytes], context: Context
) -> AsyncIterator[Any]:
    # Decoded in line (no coroutine per message: a node session's every heartbeat passes here).
    async for raw in raw_messages:
        try:
            message = decode(raw)
        except DecodeError as exc:
            await _refuse(decode, exc, context)
        yield message


def strict_decoding(handler: Handler) -> Handler:
    """``handler`` with request decoding moved inside it (INVALID_ARGUMENT on bad bytes)."""
    decode = handler.request_deserializer
    if decode is None:
        return handler
    serialize = handler.response_serializer
    if handler.request_streaming and handler.response_streaming:
        return grpc.stream_stream_rpc_method_handler(
            _wrap(handler.stream_stream, lambda raw, ctx: _decoded_stream(decode, raw, ctx)),
            response_serializer=serialize,
        )
    if handler.request_streaming:
        return grpc.stream_unary_rpc_method_handler(
            _wrap(handler.stream_unary, lambda raw, ctx: _decoded_stream(decode, raw, ctx)),
            response_serializer=serialize,
        )
    if handler.response_streaming:
        return grpc.unary_stream_rpc_method_handler(
            _wrap(handler.unary_stream, None, decode=decode), response_serializer=serialize
        )
    return grpc.unary_unary_rpc_method_handler(
        _wrap(handler.unary_unary, None, decode=decode), response_serializer=serialize
    )


def _wrap(
    behavior: Any,
    transform: Callable[[Any, Any], Any] | None,
    *,
    decode: Decoder | None = None,
) -> Any:
    """A behavior of the same kind as ``behavior`` (grpc.aio runs async generators and
    coroutines differently) that first turns raw bytes into the request (or stream)."""

    async def request_of(raw: Any, context: Any) -> Any:
        if transform is not None:
            return transform(raw, context)
        assert decode is not None
        return await _decode(decode, raw, context)

    if inspect.isasyncgenfunction(behavior):

        async def streaming(raw: Any, context: Any) -> AsyncIterator[Any]:
            async with aclosing(behavior(await request_of(raw, context), context)) as responses:
                async for response in responses:
                    yield response

        return streaming

    async def single(raw: Any, context: Any) -> Any:
        return await behavior(await request_of(raw, context), context)

    return single


class StrictDecodingInterceptor(grpc.aio.ServerInterceptor):
    """Applies ``strict_decoding`` to every method."""

    def __init__(self) -> None:
        self._handlers = HandlerCache()

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[Handler | None]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Handler | None:
        handler = await continuation(handler_call_details)
        if handler is None:
            return None
        return self._handlers.wrapped(handler_call_details.method, handler, strict_decoding)
