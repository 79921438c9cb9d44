"""What the control plane's server interceptors share: re-wrapping a gRPC method handler's
behaviour (keeping its kind and serializers), and the status a call ended with."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, TypeAlias

import grpc

Handler: TypeAlias = "grpc.RpcMethodHandler[Any, Any]"
# Given a handler's behaviour and its kind ("unary_unary", ...), the behaviour to run instead.
Wrap = Callable[[Any, str], Any]

_KINDS = (
    ("unary_unary", grpc.unary_unary_rpc_method_handler),
    ("unary_stream", grpc.unary_stream_rpc_method_handler),
    ("stream_unary", grpc.stream_unary_rpc_method_handler),
    ("stream_stream", grpc.stream_stream_rpc_method_handler),
)


def rewrap(handler: Handler, wrap: Wrap) -> Handler:
    """``handler`` with its behaviour replaced by ``wrap(behaviour, kind)``."""
    for kind, factory in _KINDS:
        behavior = getattr(handler, kind)
        if behavior is not None:
            wrapped: Handler = factory(
                wrap(behavior, kind),
                request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer,
            )
            return wrapped
    return handler


def outcome_code(context: Any, error: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with: what the context says (an abort sets it), else what the
    escaping exception means to grpc (cancelled, or UNKNOWN), else OK."""
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code
    if isinstance(error, asyncio.CancelledError):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN
