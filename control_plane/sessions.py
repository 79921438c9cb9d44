"""One node's open session on the control plane side: what to send next, and what was sent.

The session keeps only the latest assignment to send (xDS semantics: an intermediate
version the node never saw is irrelevant), plus the nonce of the last one sent so that
stale ACKs and NACKs are recognised and ignored.
"""

from __future__ import annotations

import asyncio
import uuid

from control_plane.errors import NodeClaimError
from protos.edgecdn.v1 import apps_pb2, nodes_pb2


class Session:
    """The control-plane end of one node's stream."""

    def __init__(self, node_id: str, params: nodes_pb2.SessionParams, *, credential: str = "") -> None:
        self.node_id = node_id
        # Which credential opened it: only the same credential may replace it while it lives.
        self.credential = credential
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
        # Purges go out in order, each once; unlike assignments none replaces another.
        self._purges: list[nodes_pb2.CachePurge] = []

    def push_purge(self, purge: nodes_pb2.CachePurge) -> None:
        """Queue a cache purge for the node."""
        self._purges.append(purge)
        self._wake.set()

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
            if self._purges:
                return nodes_pb2.ControlMessage(purge=self._purges.pop(0))
            self._wake.clear()
            await self._wake.wait()


def may_replace(live: Session | None, credential: str) -> bool:
    """Whether a new session opened with ``credential`` may take the node from ``live``: always
    when no session lives (none, or it is closing); while one lives, only the credential that
    opened it may (a node killed and restarted gets in at once; another credential never
    displaces a live node, it waits until that session ends)."""
    return live is None or live.closed or live.credential == credential


def check_takeover(live: Session, credential: str) -> None:
    """NodeClaimError (``taken``) unless a session opened with ``credential`` may replace ``live``."""
    if not may_replace(live, credential):
        raise NodeClaimError(
            node_id=live.node_id,
            kind="taken",
            reason=f"node {live.node_id!r} has a live session opened with another credential",
        )
