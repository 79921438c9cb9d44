"""The fleet: every known node, its session, the deployments, and who is watching.

All state changes happen on the event-loop thread; persistence goes through the
repository in short transactions. Node inventory watchers get a bounded queue each; a
watcher that falls behind is dropped (it can watch again) rather than growing memory.
Heartbeats update load and liveness in memory only; status changes are published. The
figures they carry (exact requests, 5xx and latency per app version) are added up in
``Fleet.figures``, which rollout gates and ``edgectl stats`` read.

ACKs and NACKs are written in group commits and count only once committed
(``control_plane.fleet_answers``).
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import time
from collections.abc import Callable

from control_plane.apps import AppRegistry
from control_plane.assignments import (
    desired_deployment,
    hello_problem,
    selector_matches,
    selector_problem,
    session_status,
)
from control_plane.db import Database, ProgressRow
from control_plane.deployments import STATE_NAMES, STATES, Deployment, render_deployment
from control_plane.errors import InvalidRequestError, NotFoundError
from control_plane.fleet_answers import FleetAnswers
from control_plane.fleet_model import WATCH_QUEUE_SIZE, FleetCensus, FleetNode, NodeWatch, take_census
from control_plane.records import DeploymentRecord, NodeRecord
from control_plane.sessions import Session, check_takeover
from control_plane.traces.figures import NodeFigures, decode_heartbeat
from protos.edgecdn.v1 import common_pb2, deployments_pb2, nodes_pb2

logger = logging.getLogger(__name__)

# A session silent this many times longer than it takes to become unreachable is ended:
# its stream is presumably dead (a half-open connection, a cancel that never arrived), and
# a live node reconnects. Until then an unreachable node keeps its session.
SILENT_SESSION_FACTOR = 4
SILENT_SESSION = "silent: "
Progress = deployments_pb2.NodeProgress


class Fleet:
    """Nodes, sessions and deployments; the gRPC adapters call into this."""

    def __init__(
        self,
        db: Database,
        apps: AppRegistry,
        *,
        heartbeat_interval_s: float,
        missed_allowed: int,
        figures: NodeFigures | None = None,
        vouches: Callable[[str, str], bool] = lambda node_id, region: True,
    ) -> None:
        self._db = db
        # Whether a credential the control plane holds may be this node (NodeInfo.vouched).
        self._vouches = vouches
        # The exact per app version figures heartbeats carry (what gates and stats count);
        # a node is silent once it would be marked unreachable.
        self.figures = figures or NodeFigures(
            silent_after_s=heartbeat_interval_s * missed_allowed, started_ns=time.time_ns()
        )
        self._apps = apps
        self.params = nodes_pb2.SessionParams(
            heartbeat_interval_ms=round(heartbeat_interval_s * 1000), missed_heartbeats_allowed=missed_allowed
        )
        self._heartbeat_interval_s = heartbeat_interval_s
        self._missed_allowed = missed_allowed
        self._nodes: dict[str, FleetNode] = {r.node_id: FleetNode(record=r) for r in db.list_nodes()}
        self._deployments: dict[int, Deployment] = {}
        for record in db.list_deployments():
            try:
                self._deployments[record.id] = self._load_deployment(record)
            except NotFoundError:
                # Its app version was removed (apps rm), which is refused while the
                # deployment is still in force: it is history, and no node desires it.
                continue
        for node in self._nodes.values():
            node.desired_version = self._desired_version(node.record)
        self._watches: list[NodeWatch] = []
        self._changed = asyncio.Event()
        # Counts changes of any node's status: a deployment's wire form refreshes the statuses
        # it shows only when this moved (control_plane.deployments).
        self.status_changes = 0
        self._answers = FleetAnswers(db, self)
        # Since the start, for /metrics: what nodes sent, by kind; spans they could not export.
        self.messages_by_kind: dict[str, int] = {}
        self.spans_dropped_by_region: dict[str, int] = {}
        # Where PurgeDone messages go (control_plane.purges.PurgeBook.done), when set.
        self.on_purge_done: Callable[[str, nodes_pb2.PurgeDone], None] | None = None
        # The purge log (control_plane.purges.PurgeBook): its newest sequence, told to each new
        # session, and the purges a node missed, queued on its new session.
        self.newest_purge: Callable[[], int] = lambda: 0
        self.on_session_open: Callable[[nodes_pb2.NodeHello, Session], None] | None = None

    def _load_deployment(self, record: DeploymentRecord) -> Deployment:
        selector = common_pb2.Selector.FromString(record.selector)
        app = self._apps.get(record.app_name, record.app_version)
        progress = {
            p.node_id: (
                p.region,
                STATES[p.state],
                None if p.error is None else common_pb2.ErrorDetail.FromString(p.error),
            )
            for p in self._db.deployment_progress(record.id)
        }
        return Deployment(id=record.id, record=record, selector=selector, app=app, progress=progress)

    def _desired(self, record: NodeRecord) -> Deployment | None:
        return desired_deployment(
            list(self._deployments.values()), node_id=record.node_id, region=record.region
        )

    def _desired_version(self, record: NodeRecord) -> str:
        desired = self._desired(record)
        return "" if desired is None else str(desired.id)

    # -- changes -------------------------------------------------------------------------

    def change_event(self) -> asyncio.Event:
        """An event set at the next change to any node or deployment (take it before reading)."""
        return self._changed

    def set_status(self, node: FleetNode, status: nodes_pb2.NodeStatus.ValueType) -> None:
        if node.status != status:
            node.status = status
            self.status_changes += 1

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def publish(self, node: FleetNode, kind: nodes_pb2.NodeEvent.Kind.ValueType) -> None:
        event: nodes_pb2.NodeEvent | None = None  # built once, and only for a watcher that wants it
        for watch in self._watches:
            if watch.overflowed or (watch.regions and node.record.region not in watch.regions):
                continue
            if event is None:
                event = nodes_pb2.NodeEvent(kind=kind, node=self._info(node))
            try:
                watch.queue.put_nowait(event)
            except asyncio.QueueFull:
                watch.overflowed = True
        self._touch()

    def watch_nodes(self, regions: frozenset[str]) -> NodeWatch:
        """Subscribe: the queue starts with the snapshot and SNAPSHOT_END, then changes follow."""
        watch = NodeWatch(regions=regions, queue=asyncio.Queue(maxsize=WATCH_QUEUE_SIZE + len(self._nodes)))
        for info in self.list_nodes(regions):
            watch.queue.put_nowait(nodes_pb2.NodeEvent(kind=nodes_pb2.NodeEvent.KIND_SNAPSHOT, node=info))
        watch.queue.put_nowait(nodes_pb2.NodeEvent(kind=nodes_pb2.NodeEvent.KIND_SNAPSHOT_END))
        self._watches.append(watch)
        return watch

    def unwatch(self, watch: NodeWatch) -> None:
        if watch in self._watches:
            self._watches.remove(watch)

    # -- reads ---------------------------------------------------------------------------

    def _info(self, node: FleetNode) -> nodes_pb2.NodeInfo:
        return node.info(vouched=self._vouches(node.record.node_id, node.record.region))

    def census(self) -> FleetCensus:
        """Nodes by (region, status), sessions by region, deployments: for /metrics."""
        return take_census(self._nodes.values(), self._deployments.values())

    def list_nodes(self, regions: frozenset[str] = frozenset()) -> list[nodes_pb2.NodeInfo]:
        nodes = sorted(self._nodes.values(), key=lambda n: (n.record.region, n.record.node_id))
        return [self._info(n) for n in nodes if not regions or n.record.region in regions]

    def deployment(self, deployment_id: str) -> deployments_pb2.Deployment:
        found = self._deployments.get(int(deployment_id)) if deployment_id.isdigit() else None
        if found is None:
            raise NotFoundError(kind="deployment", key=deployment_id)
        return render_deployment(
            found,
            lambda node_id: (
                self._nodes[node_id].status if node_id in self._nodes else nodes_pb2.NODE_STATUS_UNSPECIFIED
            ),
            statuses_version=self.status_changes,
        )

    # -- deployments ---------------------------------------------------------------------

    def deploy(self, *, app_name: str, app_version: str, selector: common_pb2.Selector) -> str:
        """Assign ``app_name@app_version`` to the selected nodes now; the new deployment's id."""
        problem = selector_problem(selector)
        if problem is not None:
            raise InvalidRequestError(field="target", reason=problem)
        app = self._apps.get(app_name, app_version or None)
        for node_id in selector.node_ids:
            if node_id not in self._nodes:
                raise NotFoundError(kind="node", key=node_id)
        targets = [
            (n.record.node_id, n.record.region)
            for n in self._nodes.values()
            if selector_matches(selector, node_id=n.record.node_id, region=n.record.region)
        ]
        record = self._db.add_deployment(
            app_name=app.name,
            app_version=app.version,
            selector=selector.SerializeToString(deterministic=True),
            targets=targets,
        )
        deployment = Deployment(
            id=record.id,
            record=record,
            selector=selector,
            app=app,
            progress={node_id: (region, Progress.STATE_PENDING, None) for node_id, region in targets},
        )
        self._deployments[record.id] = deployment
        for node_id, _ in targets:
            node = self._nodes[node_id]
            node.desired_version = str(record.id)
            if node.session is not None:
                node.session.push(deployment_id=record.id, app=app, cause=f"deployment {record.id}")
            self.publish(node, nodes_pb2.NodeEvent.KIND_UPSERT)
        logger.info("deployment %d: %s@%s to %d nodes", record.id, app.name, app.version, len(targets))
        self._touch()
        return str(record.id)

    def _set_progress(
        self,
        deployment_id: int,
        node_id: str,
        state: Progress.State.ValueType,
        error: common_pb2.ErrorDetail | None,
    ) -> None:
        """Write a targeted node's new progress, then count it (durable before it counts)."""
        row = self.progress_row(deployment_id, node_id, state, error)
        if row is not None:
            self._db.set_progress(deployment_id, node_id, row[0], row[1])
            self._deployments[deployment_id].set(node_id, state, error)

    def progress_row(
        self,
        deployment_id: int,
        node_id: str,
        state: Progress.State.ValueType,
        error: common_pb2.ErrorDetail | None,
    ) -> ProgressRow | None:
        """The row to write for a node's new progress (None: not targeted, or unchanged)."""
        deployment = self._deployments.get(deployment_id)
        current = None if deployment is None else deployment.progress.get(node_id)
        if current is None or (current[1] == state and error is None):
            return None
        encoded = None if error is None else error.SerializeToString()
        return STATE_NAMES[state], encoded, deployment_id, node_id

    def regions(self) -> frozenset[str]:
        """Every region a node has reported (without building each node's NodeInfo)."""
        return frozenset(node.record.region for node in self._nodes.values())

    # -- sessions ------------------------------------------------------------------------

    def open_session(self, hello: nodes_pb2.NodeHello, *, credential: str = "") -> Session:
        """Register a node's new session and queue what it must run; a live session of the node
        is replaced only by one opened with the same credential (``check_takeover``)."""
        problem = hello_problem(hello)
        if problem is not None:
            raise InvalidRequestError(field="hello", reason=problem)
        node = self._nodes.get(hello.node_id)
        if node is None:
            previous = NodeRecord(node_id=hello.node_id, region=hello.region)
        else:
            previous = node.fresh_record()
        if node is not None and node.session is not None:
            check_takeover(node.session, credential)
            node.session.close("replaced by a newer session of the same node")
        record = dataclasses.replace(
            previous,
            region=hello.region,
            pop=hello.pop,
            address=hello.address,
            agent_version=hello.agent_version,
            capacity_rps=hello.capacity_rps,
            assignment_version=hello.assignment_version,
            app_name=hello.app.name if hello.HasField("app") else "",
            app_version=hello.app.version if hello.HasField("app") else "",
            last_heartbeat=time.time(),
        )
        params = self.params
        newest_purge = self.newest_purge()
        if newest_purge:
            params = nodes_pb2.SessionParams()
            params.CopyFrom(self.params)
            params.purge_sequence = newest_purge
        session = Session(hello.node_id, params, credential=credential)
        node = FleetNode(record=record, status=nodes_pb2.NODE_STATUS_READY, last_heard=time.monotonic())
        node.session = session
        self._nodes[hello.node_id] = node
        self.status_changes += 1  # a new entry for the node, READY
        desired = self._desired(record)
        if desired is not None:
            node.desired_version = str(desired.id)
            if hello.assignment_version == node.desired_version:
                # Resume: the node already runs what it should; nothing to send or fetch.
                self._set_progress(desired.id, record.node_id, Progress.STATE_ACKED, None)
            else:
                session.push(deployment_id=desired.id, app=desired.app, cause=f"deployment {desired.id}")
        self._db.put_node(record)
        self.publish(node, nodes_pb2.NodeEvent.KIND_UPSERT)
        logger.info(
            "node %s (%s) connected at version %r", record.node_id, record.region, record.assignment_version
        )
        if self.on_session_open is not None:
            self.on_session_open(hello, session)
        return session

    def live_sessions(self) -> list[tuple[str, str, Session]]:
        """(node id, region, session) of every node with an open session."""
        return [
            (node.record.node_id, node.record.region, node.session)
            for node in self._nodes.values()
            if node.session is not None and not node.session.closed
        ]

    def _current(self, session: Session) -> FleetNode | None:
        node = self._nodes.get(session.node_id)
        return node if node is not None and node.session is session else None

    def _heard(self, node: FleetNode) -> None:
        node.last_heard = time.monotonic()
        if node.status != nodes_pb2.NODE_STATUS_READY:
            self.set_status(node, nodes_pb2.NODE_STATUS_READY)
            self.publish(node, nodes_pb2.NodeEvent.KIND_UPSERT)

    def handle(self, session: Session, message: nodes_pb2.NodeMessage) -> None:
        """Apply one message from a node."""
        node = self._current(session)
        if node is None:
            return
        kind = message.WhichOneof("message")
        self.messages_by_kind[str(kind)] = self.messages_by_kind.get(str(kind), 0) + 1
        if kind == "heartbeat":
            report = decode_heartbeat(node.record.node_id, node.record.region, message.heartbeat)
            self.figures.record(report, time.time_ns())
            if report.spans_dropped:
                region = node.record.region
                self.spans_dropped_by_region[region] = (
                    self.spans_dropped_by_region.get(region, 0) + report.spans_dropped
                )
            node.load = message.heartbeat.load
            node.heartbeat_at = time.time()
            self._heard(node)
        elif kind == "ack":
            self._answers.on_ack(node, session, message.ack)
        elif kind == "nack":
            self._answers.on_nack(node, session, message.nack)
        elif kind == "purge_done":
            self._heard(node)
            if self.on_purge_done is not None:
                self.on_purge_done(node.record.node_id, message.purge_done)
        elif kind == "hello":
            raise InvalidRequestError(field="hello", reason="sent twice in one session")
        else:
            self._heard(node)

    @property
    def answer_commits(self) -> int:
        """Transactions that stored ACKs and NACKs since the start (for /metrics)."""
        return self._answers.commits

    def flush_answers(self) -> None:
        """Commit and count the ACKs and NACKs received so far (shutdown; else the loop's next pass)."""
        self._answers.flush()

    # What FleetAnswers asks of the fleet (fleet_answers.AnswerHost).

    def node(self, node_id: str) -> FleetNode | None:
        return self._nodes.get(node_id)

    def deployment_of(self, deployment_id: int) -> Deployment | None:
        return self._deployments.get(deployment_id)

    def close_session(self, session: Session) -> None:
        """The stream ended; the node is disconnected unless a newer session replaced this one."""
        session.close("stream ended")
        node = self._current(session)
        if node is None:
            return
        node.session = None
        self.set_status(node, nodes_pb2.NODE_STATUS_DISCONNECTED)
        self._db.put_node(node.fresh_record())
        self.publish(node, nodes_pb2.NodeEvent.KIND_UPSERT)
        logger.info("node %s disconnected", node.record.node_id)

    def sweep(self) -> None:
        """Mark nodes whose heartbeats stopped as unreachable; end sessions silent for long."""
        now = time.monotonic()
        silent_limit_s = SILENT_SESSION_FACTOR * self._missed_allowed * self._heartbeat_interval_s
        for node in self._nodes.values():
            if node.session is not None and now - node.last_heard > silent_limit_s:
                # The stream's handler sees the closed session, ends the stream and reports
                # the node disconnected (close_session).
                if not node.session.closed:
                    node.session.close(f"{SILENT_SESSION}no heartbeat for {now - node.last_heard:.1f} s")
                    logger.warning(
                        "node %s silent for %.1f s: ending its session",
                        node.record.node_id,
                        now - node.last_heard,
                    )
                continue
            if (
                node.session is not None
                and node.status == nodes_pb2.NODE_STATUS_READY
                and session_status(
                    connected=True,
                    seconds_since_heard=now - node.last_heard,
                    heartbeat_interval_s=self._heartbeat_interval_s,
                    missed_allowed=self._missed_allowed,
                )
                == nodes_pb2.NODE_STATUS_UNREACHABLE
            ):
                self.set_status(node, nodes_pb2.NODE_STATUS_UNREACHABLE)
                logger.warning("node %s missed its heartbeats: unreachable", node.record.node_id)
                self.publish(node, nodes_pb2.NodeEvent.KIND_UPSERT)

    def close_all(self, reason: str) -> None:
        for node in self._nodes.values():
            if node.session is not None:
                node.session.close(reason)
