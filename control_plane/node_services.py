"""gRPC adapters for node sessions (the xDS-style stream) and the node inventory.

A session's hello must match the caller's credential (``TokenTable.claim_problem``): a node
token bound to a node id and region opens sessions only as that node, and a live session is
taken over only by the credential that opened it. Refusals are PERMISSION_DENIED (another
node's id or region) or ALREADY_EXISTS (the node is live under another credential), logged.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import grpc

from control_plane.assignments import regions_filter
from control_plane.auth import Principal, TokenTable, bearer_token
from control_plane.errors import ControlPlaneError, NodeClaimError
from control_plane.fleet import SILENT_SESSION, Fleet
from control_plane.fleet_answers import STORE_FAILED
from control_plane.grpc_errors import abort_with
from control_plane.sessions import Session
from protos.edgecdn.v1 import nodes_pb2, nodes_pb2_grpc

logger = logging.getLogger(__name__)

Context = grpc.aio.ServicerContext[Any, Any]
HELLO_TIMEOUT_S = 10.0
PROTOCOL_ERROR = "protocol error: "


def _caller(context: Context, tokens: TokenTable) -> Principal | None:
    """The principal of the call's bearer token (the interceptor has let only known ones in)."""
    for key, value in context.invocation_metadata() or ():
        if key == "authorization":
            token = bearer_token(value if isinstance(value, str) else value.decode())
            return tokens.lookup(token) if token else None
    return None


class NodeSessionServicer(nodes_pb2_grpc.NodeSessionServiceServicer):
    def __init__(self, fleet: Fleet, tokens: TokenTable | None = None) -> None:
        self._fleet = fleet
        # None: no credential checks (a fleet run in-process by tests of the protocol alone).
        self._tokens = tokens

    def _claim(self, hello: nodes_pb2.NodeHello, context: Context) -> str:
        """The credential id the session is opened with; NodeClaimError when it may not be that node."""
        if self._tokens is None:
            return ""
        principal = _caller(context, self._tokens)
        if principal is None:
            raise NodeClaimError(node_id=hello.node_id, kind="forbidden", reason="no node credential")
        problem = self._tokens.claim_problem(principal, node_id=hello.node_id, region=hello.region)
        if problem is not None:
            raise NodeClaimError(node_id=hello.node_id, kind="forbidden", reason=problem)
        return principal.credential

    async def Connect(  # noqa: N802 - gRPC method name
        self, request_iterator: AsyncIterator[nodes_pb2.NodeMessage], context: Context
    ) -> AsyncIterator[nodes_pb2.ControlMessage]:
        try:
            first = await asyncio.wait_for(anext(request_iterator, None), HELLO_TIMEOUT_S)
        except TimeoutError:
            await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, f"no hello within {HELLO_TIMEOUT_S:g} s")
        if first is None or first.WhichOneof("message") != "hello":
            await context.abort(
                grpc.StatusCode.INVALID_ARGUMENT, "the first message of a session must be hello"
            )
        try:
            session = self._fleet.open_session(first.hello, credential=self._claim(first.hello, context))
        except NodeClaimError as exc:
            logger.warning("refused a session as node %r from %s: %s", exc.node_id, context.peer(), exc)
            code = (
                grpc.StatusCode.PERMISSION_DENIED
                if exc.kind == "forbidden"
                else grpc.StatusCode.ALREADY_EXISTS
            )
            await context.abort(code, f"session refused: {exc}")
        except ControlPlaneError as exc:
            await abort_with(context, exc)
        reader = asyncio.create_task(
            self._read(session, request_iterator), name=f"node-session-reader:{session.node_id}"
        )
        try:
            while (message := await session.next_message()) is not None:
                yield message
        finally:
            reader.cancel()
            try:
                await asyncio.wait([reader])
            finally:
                # However the wait ends: grpc cancels this task when the node's cancel reaches
                # it, and the handler may be here already (its reads ended first); that cancel
                # must not skip the session's end (the node would stay READY). Ended last, in
                # the step that ends the call, so /metrics never shows one without the other.
                self._fleet.close_session(session)
        if session.close_reason.startswith(PROTOCOL_ERROR):
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, session.close_reason)
        if session.close_reason.startswith("replaced"):
            await context.abort(grpc.StatusCode.ABORTED, session.close_reason)
        if session.close_reason.startswith(SILENT_SESSION):
            await context.abort(grpc.StatusCode.UNAVAILABLE, session.close_reason)
        if session.close_reason.startswith(("shutting down", STORE_FAILED)):
            await context.abort(grpc.StatusCode.UNAVAILABLE, session.close_reason)

    async def _read(self, session: Session, requests: AsyncIterator[nodes_pb2.NodeMessage]) -> None:
        reason = "stream ended"
        try:
            async for message in requests:
                self._fleet.handle(session, message)
        except ControlPlaneError as exc:
            reason = f"{PROTOCOL_ERROR}{exc}"
        except grpc.RpcError as exc:
            reason = f"stream failed: {exc}"
        finally:
            session.close(reason)


class NodeServicer(nodes_pb2_grpc.NodeServiceServicer):
    def __init__(self, fleet: Fleet) -> None:
        self._fleet = fleet

    async def ListNodes(  # noqa: N802 - gRPC method name
        self, request: nodes_pb2.ListNodesRequest, context: Context
    ) -> nodes_pb2.ListNodesResponse:
        return nodes_pb2.ListNodesResponse(nodes=self._fleet.list_nodes(regions_filter(request.regions)))

    async def WatchNodes(  # noqa: N802 - gRPC method name
        self, request: nodes_pb2.WatchNodesRequest, context: Context
    ) -> AsyncIterator[nodes_pb2.NodeEvent]:
        watch = self._fleet.watch_nodes(regions_filter(request.regions))
        try:
            while True:
                if watch.overflowed:
                    await context.abort(
                        grpc.StatusCode.RESOURCE_EXHAUSTED,
                        "watcher fell behind the node inventory; watch again",
                    )
                yield await watch.queue.get()
        finally:
            self._fleet.unwatch(watch)
