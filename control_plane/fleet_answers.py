"""Nodes' ACKs and NACKs: received, written in group commits, and only then counted.

Those received within ``ANSWER_COMMIT_WINDOW_S`` share one SQLite transaction
(``control_plane.group_commit``); each counts (progress, node record and status, events)
only once that transaction has committed. A failed commit counts nothing and ends the
answering nodes' sessions: each reconnects, and its hello says what it runs.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

from control_plane.db import Database, ProgressRow
from control_plane.deployments import Deployment
from control_plane.fleet_model import FleetNode
from control_plane.group_commit import GroupCommit
from control_plane.records import NodeRecord
from control_plane.sessions import Session
from protos.edgecdn.v1 import common_pb2, deployments_pb2, nodes_pb2

logger = logging.getLogger("control_plane.fleet")

Progress = deployments_pb2.NodeProgress
# How long ACKs and NACKs gather before their group commit: an answer counts at most this
# much later, and a deploy to 10,000 nodes makes ~10x fewer commits.
ANSWER_COMMIT_WINDOW_S = 0.005
# A session ended because its node's ACK or NACK could not be stored: the node reconnects.
STORE_FAILED = "store failed: "


class AnswerHost(Protocol):
    """What the answers need of the fleet (``control_plane.fleet.Fleet``)."""

    def node(self, node_id: str) -> FleetNode | None: ...

    def deployment_of(self, deployment_id: int) -> Deployment | None: ...

    def progress_row(
        self,
        deployment_id: int,
        node_id: str,
        state: Progress.State.ValueType,
        error: common_pb2.ErrorDetail | None,
    ) -> ProgressRow | None: ...

    def set_status(self, node: FleetNode, status: nodes_pb2.NodeStatus.ValueType) -> None: ...

    def publish(self, node: FleetNode, kind: nodes_pb2.NodeEvent.Kind.ValueType) -> None: ...


@dataclass(slots=True, kw_only=True)
class Answer:
    """A node's ACK or NACK, received and not yet committed. ``record`` is what its commit
    writes (None: not written, the node's session was replaced meanwhile)."""

    node: FleetNode
    session: Session
    deployment_id: int
    state: Progress.State.ValueType
    version: str
    app: tuple[str, str] | None = None  # (name, version) an ACK says the node now runs
    error: common_pb2.ErrorDetail | None = None
    record: NodeRecord | None = None


def answered_record(base: NodeRecord, answer: Answer, heartbeat_at: float) -> NodeRecord:
    """``base`` as ``answer`` leaves it: the version the node runs, the app an ACK names, the
    error a NACK gives; and the latest heartbeat time. Built directly: ``dataclasses.replace``
    costs twice as much, and this runs for every ACK of a deploy."""
    acked = answer.app is not None
    return NodeRecord(
        node_id=base.node_id,
        region=base.region,
        pop=base.pop,
        address=base.address,
        agent_version=base.agent_version,
        capacity_rps=base.capacity_rps,
        assignment_version=answer.version,
        app_name=answer.app[0] if answer.app is not None else base.app_name,
        app_version=answer.app[1] if answer.app is not None else base.app_version,
        last_heartbeat=max(base.last_heartbeat, heartbeat_at),
        last_error=None if acked or answer.error is None else answer.error.SerializeToString(),
    )


class FleetAnswers:
    """The fleet's ACK/NACK intake (``on_ack``, ``on_nack``), committed in groups."""

    def __init__(self, db: Database, host: AnswerHost) -> None:
        self._db = db
        self._host = host
        self._group: GroupCommit[Answer] = GroupCommit(
            commit=self._commit, apply=self._apply, on_failed=self._failed, window_s=ANSWER_COMMIT_WINDOW_S
        )

    @property
    def batches(self) -> int:
        return self._group.batches

    def on_ack(self, node: FleetNode, session: Session, ack: nodes_pb2.AssignmentAck) -> None:
        if not session.sent_nonce or ack.nonce != session.sent_nonce:
            logger.debug("node %s: stale ACK nonce %s ignored", node.record.node_id, ack.nonce)
            return
        self._group.add(
            Answer(
                node=node,
                session=session,
                deployment_id=session.sent_deployment,
                state=Progress.STATE_ACKED,
                version=ack.version,
                app=(session.sent_app.name, session.sent_app.version),
            )
        )

    def on_nack(self, node: FleetNode, session: Session, nack: nodes_pb2.AssignmentNack) -> None:
        if not session.sent_nonce or nack.nonce != session.sent_nonce:
            logger.debug("node %s: stale NACK nonce %s ignored", node.record.node_id, nack.nonce)
            return
        logger.warning(
            "node %s refused version %s: %s", node.record.node_id, nack.rejected_version, nack.error.message
        )
        self._group.add(
            Answer(
                node=node,
                session=session,
                deployment_id=session.sent_deployment,
                state=Progress.STATE_NACKED,
                version=nack.version,
                error=nack.error,
            )
        )

    @property
    def commits(self) -> int:
        """Transactions that stored ACKs and NACKs since the start (for /metrics)."""
        return self._group.batches

    def flush(self) -> None:
        """Commit and count the ACKs and NACKs received so far (shutdown; else the loop's next pass)."""
        self._group.flush()

    def _commit(self, batch: list[Answer]) -> None:
        """One transaction: each answer's node record and progress (records chained in order)."""
        records: dict[str, NodeRecord] = {}
        progress: list[ProgressRow] = []
        for answer in batch:
            node_id = answer.node.record.node_id
            if self._host.node(node_id) is not answer.node:
                # A newer session replaced the node's: its hello said what the node runs.
                answer.record = None
                continue
            base = records.get(node_id, answer.node.record)
            records[node_id] = answer.record = answered_record(base, answer, answer.node.heartbeat_at)
            row = self._host.progress_row(answer.deployment_id, node_id, answer.state, answer.error)
            if row is not None:
                progress.append(row)
        self._db.put_answers(list(records.values()), progress)

    def _apply(self, batch: list[Answer]) -> None:
        """After the commit: the answers count (progress, node record and status, events)."""
        for answer in batch:
            node = answer.node
            if answer.record is None:
                continue
            node.record = answer.record
            deployment = self._host.deployment_of(answer.deployment_id)
            if deployment is not None:
                deployment.set(node.record.node_id, answer.state, answer.error)
            node.last_heard = time.monotonic()
            if answer.app is not None and node.session is answer.session and not answer.session.closed:
                self._host.set_status(node, nodes_pb2.NODE_STATUS_READY)
            self._host.publish(node, nodes_pb2.NodeEvent.KIND_UPSERT)

    def _failed(self, batch: list[Answer], error: Exception) -> None:
        """The commit failed, so the answers do not count: end their sessions; each node
        reconnects and its hello says what it runs (which then counts, written first)."""
        for answer in batch:
            answer.session.close(f"{STORE_FAILED}could not store the node's answer ({error}); reconnect")
