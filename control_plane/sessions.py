"""One node's open session on the control plane side: what to send next, and what was sent.

The session keeps only the latest assignment to send (xDS semantics: an intermediate
version the node never saw is irrelevant), plus the nonce of the last one sent so that
stale ACKs and NACKs are recognised and ignored.
"""

from __future__ import annotations

import asyncio
import uuid

from protos.edgecdn.v1 import apps_pb2, nodes_pb2


class Session:
    """The control-plane end of one node's stream."""

    def __init__(self, node_id: str, params: nodes_pb2.SessionParams) -> None:
        self.node_id = node_id
        self._params: nodes_pb2.SessionParams | None = params
        self._pending: nodes_pb2.Assignment | None = None
        self._pending_deployment = 0
        self._wake = asyncio.Event()
        self._wake.set()
        self.closed = False
        self.close_reason = ""
        self.sent_nonce = ""
        self.sent_version = ""
        self.sent_deployment = 0
        self.sent_app = apps_pb2.AppVersion()

    def push(self, *, deployment_id: int, app: apps_pb2.AppVersion, cause: str) -> None:
        """Queue an assignment; it replaces any assignment not yet written."""
        self._pending = nodes_pb2.Assignment(
            version=str(deployment_id), nonce=uuid.uuid4().hex, app=app, cause=cause
        )
        self._pending_deployment = deployment_id
        self._wake.set()

    def close(self, reason: str) -> None:
        if not self.closed:
            self.closed = True
            self.close_reason = reason
            self._wake.set()

    async def next_message(self) -> nodes_pb2.ControlMessage | None:
        """The next message to write, waiting as long as needed; None once the session closed."""
        while True:
            if self.closed:
                return None
            if self._params is not None:
                params, self._params = self._params, None
                return nodes_pb2.ControlMessage(params=params)
            if self._pending is not None:
                assignment, self._pending = self._pending, None
                self.sent_nonce = assignment.nonce
                self.sent_version = assignment.version
                self.sent_deployment = self._pending_deployment
                self.sent_app = assignment.app
                return nodes_pb2.ControlMessage(assignment=assignment)
            self._wake.clear()
            await self._wake.wait()
