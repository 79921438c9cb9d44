"""What the control plane's server interceptors share: re-wrapping a gRPC method handler's
behaviour (keeping its kind and serializers), a cache of the wrapped handlers, and the status
a call ended with."""

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


# Entries a HandlerCache keeps: one per (method, handler) the server has, a few refusals each.
# A caller probing method names could add more; past the bound the cache starts afresh.
HANDLER_CACHE_ENTRIES = 1024


class HandlerCache:
    """Wrapped handlers, kept per (method, source handler): an interceptor wraps each method's
    handler once, not on every call. A wrapping depends only on the method and the handler it
    wraps (what varies per call, such as metadata, is read from the call's context), and grpc
    gives the same handler object for a method on every call, so a cached wrapping is exactly
    the one a fresh wrap would make. Wrapping every call anew cost a deploy to 10,000 nodes
    some 10,000 x 4 handler and closure constructions on the event loop."""

    def __init__(self, limit: int = HANDLER_CACHE_ENTRIES) -> None:
        self._limit = limit
        self._entries: dict[tuple[str, int], tuple[Handler, Handler]] = {}

    def wrapped(self, method: str, source: Handler, wrap: Callable[[Handler], Handler]) -> Handler:
        """``wrap(source)``, made once per (method, source)."""
        key = (method, id(source))
        found = self._entries.get(key)
        # The entry holds ``source`` itself, so its id cannot have been reused while cached.
        if found is not None and found[0] is source:
            return found[1]
        result = wrap(source)
        if len(self._entries) >= self._limit:
            self._entries.clear()
        self._entries[key] = (source, result)
        return result

    def __len__(self) -> int:
        return len(self._entries)


def outcome_code(context: Any, error: BaseException | None) -> grpc.StatusCode:
    """The status a call ended with: what the context says (an abort sets it), else what the
    escaping exception means to grpc (cancelled, or UNKNOWN), else OK."""
    code = context.code() if hasattr(context, "code") else None
    if isinstance(code, grpc.StatusCode):
        return code
    # GeneratorExit: a streaming handler closed after its call ended without it (a failed write).
    if isinstance(error, asyncio.CancelledError | GeneratorExit):
        return grpc.StatusCode.CANCELLED
    return grpc.StatusCode.OK if error is None else grpc.StatusCode.UNKNOWN


class GenericRegistration:
    """A grpc.aio server as the generated ``add_*Servicer_to_server`` functions see it: each
    service is added as a generic handler only, not also method by method.

    grpc.aio's accept loop keeps one pending request per registered method and waits on all
    of them (``asyncio.wait``) for every call it takes in: with the control plane's ~30
    methods registered that wait was ~10% of its CPU in a deploy to 10,000 nodes (10,000
    ``DownloadModule`` calls), measured. Served through the generic handlers the generated
    code also adds, the loop waits on one request; a call then finds its handler with one
    dictionary lookup per service (``_MethodResolver``), which is the cheaper side."""

    def __init__(self, server: grpc.aio.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Any) -> None:
        self._server.add_generic_rpc_handlers(handlers)

    def add_registered_method_handlers(self, service_name: str, method_handlers: Any) -> None:
        """Not registered: the same handlers arrive through ``add_generic_rpc_handlers``."""
