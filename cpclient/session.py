"""``NodeSession``: the node end of the xDS-style stream to the control plane.

It connects (exponential back-off with jitter between attempts), says hello with the
version and module digests it already holds, heartbeats at the interval the control plane
sets (with the node's exact figures since the previous one, and a last heartbeat when it
stops), and for every assignment fetches only the modules it lacks, verifies their sha256,
hands the assignment and all its modules' bytes to the node's ``apply`` callback, and ACKs
(or NACKs with the version it keeps and the error). The callback does the compile and the
atomic swap; when it raises, the node keeps its previous state.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import random
from collections.abc import Awaitable, Callable, Mapping

import grpc

from cpclient.channel import auth_metadata, open_channel
from cpclient.errors import ApplyError, ModuleFetchError
from cpclient.fetch import fetch_module
from cpclient.purge_state import PurgeState
from cpclient.reconnect import plan_reconnect
from cpclient.session_model import (
    AppliedState,
    HeartbeatFigures,
    NodeIdentity,
    SessionSettings,
    SessionStats,
)
from cpclient.store import ModuleStore
from httpcache.model import PurgeSelector
from protos.edgecdn.v1 import apps_pb2, common_pb2, modules_pb2_grpc, nodes_pb2, nodes_pb2_grpc

logger = logging.getLogger(__name__)

ApplyCallback = Callable[[nodes_pb2.Assignment, Mapping[str, bytes]], Awaitable[None] | None]
LoadProvider = Callable[[], common_pb2.Load]
# (selector, soft) -> entries removed (or invalidated); the node's cache purge (awaited when
# it returns an awaitable: the node's disk tier is purged off the event loop).
PurgeCallback = Callable[[PurgeSelector, bool], int | Awaitable[int]]
WRITE_TIMEOUT_S = 10.0
MAX_REMEMBERED_REFUSALS = 64  # distinct refusal texts already logged at ERROR (bounded)
LAST_HEARTBEAT_TIMEOUT_S = 1.0  # a stopping node does not wait longer to say goodbye


class NodeSession:
    """Keeps one node's session open until ``run`` is cancelled or ``stop`` is set.

    ``channel``: share one channel among many sessions (one HTTP/2 connection); when None,
    each connection attempt opens and closes its own.
    """

    def __init__(
        self,
        settings: SessionSettings,
        identity: NodeIdentity,
        *,
        apply: ApplyCallback,
        store: ModuleStore,
        initial: AppliedState | None = None,
        load: LoadProvider | None = None,
        figures: HeartbeatFigures | None = None,
        channel: grpc.aio.Channel | None = None,
        rng: random.Random | None = None,
        purge: PurgeCallback | None = None,
        purge_state: PurgeState | None = None,
    ) -> None:
        self.settings = settings
        self.identity = identity
        self.state = initial or AppliedState()
        self.stats = SessionStats()
        self.params = nodes_pb2.SessionParams(heartbeat_interval_ms=1000, missed_heartbeats_allowed=3)
        self._apply = apply
        self._store = store
        self._load = load or common_pb2.Load
        self._figures = figures
        self._purge = purge  # None: the node has no cache (purges answer 0)
        # Where its cache stands in the purge log (a new, empty one unless the node says).
        self.purge_state = purge_state or PurgeState()
        self._call: Call | None = None  # the open session's stream, for the last heartbeat
        self._shared_channel = channel
        self._rng = rng or random.Random()  # noqa: S311 - jitter, not secrets
        self._metadata = auth_metadata(settings.token)
        self._write_lock = asyncio.Lock()
        self._changed = asyncio.Event()
        self._told: set[str] = set()  # refusal texts logged at ERROR since the last connect
        self.connected = False

    # -- observing -----------------------------------------------------------------------

    def _touch(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[NodeSession], bool], timeout_s: float) -> None:
        """Return once ``predicate(self)`` holds; TimeoutError after ``timeout_s``."""
        async with asyncio.timeout(timeout_s):
            while not predicate(self):
                await self._changed.wait()

    # -- lifecycle -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event | None = None) -> None:
        """Connect, serve the session, reconnect with back-off; until cancelled or ``stop``."""
        attempt = 0
        while stop is None or not stop.is_set():
            connects = self.stats.connects
            code: grpc.StatusCode | None = None
            try:
                if not await self._run_once_until(stop):
                    return  # stopped while the session was open
                self.stats.last_error = "the control plane closed the session"
            except grpc.aio.AioRpcError as exc:
                code = exc.code()
                self.stats.last_error = f"{code.name}: {exc.details()}"
            except (TimeoutError, OSError, grpc.aio.UsageError) as exc:
                self.stats.last_error = f"{type(exc).__name__}: {exc}"
            self.connected = False
            self._touch()
            if self.stats.connects > connects:
                attempt = 0
                self._told.clear()  # accepted since: a refusal after this is news again
            else:
                attempt += 1
            plan = plan_reconnect(
                identity=self.identity,
                code=code,
                error=self.stats.last_error,
                attempt=attempt,
                backoff=self.settings.backoff,
                rng=self._rng,
                told=frozenset(self._told),
            )
            if plan.refused and len(self._told) < MAX_REMEMBERED_REFUSALS:
                self._told.add(self.stats.last_error)
            logger.log(plan.level, "%s", plan.message)
            delay = plan.delay_s
            if stop is None:
                await asyncio.sleep(delay)
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)

    async def _run_once_until(self, stop: asyncio.Event | None) -> bool:
        """One session, ended early when ``stop`` is set; True when the session itself ended."""
        if stop is None:
            await self.run_once()
            return True
        session = asyncio.create_task(self.run_once(), name=f"cpclient-session:{self.identity.node_id}")
        stopped = asyncio.create_task(stop.wait(), name=f"cpclient-stop:{self.identity.node_id}")
        try:
            await asyncio.wait({session, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if stopped.done() and not session.done():
                await self._last_heartbeat()
        finally:
            stopped.cancel()
            if not session.done():
                session.cancel()
                # asyncio.wait never raises the session's CancelledError, so a cancellation of
                # this task itself still propagates from here.
                await asyncio.wait({session})
        if session.cancelled():
            return False
        session.result()  # re-raise what ended the session, for run()'s back-off
        return True

    async def run_once(self) -> None:
        """One session: returns when the control plane ends it; raises AioRpcError on failure."""
        channel = self._shared_channel or open_channel(self.settings.target, self.settings.tls)
        try:
            call = nodes_pb2_grpc.NodeSessionServiceStub(channel).Connect(metadata=self._metadata)
            modules = modules_pb2_grpc.ModuleServiceStub(channel)
            heartbeats: asyncio.Task[None] | None = None
            self._call = call
            try:
                await self._write(call, nodes_pb2.NodeMessage(hello=self._hello()))
                async for message in call:
                    kind = message.WhichOneof("message")
                    if kind == "params":
                        self.params = message.params
                        adopted = self.purge_state.adopt(message.params.purge_sequence)
                        if adopted and self.purge_state.persisted:
                            await asyncio.to_thread(self.purge_state.save)
                        self.stats.connects += 1
                        self.connected = True
                        self._touch()
                        if heartbeats is None:
                            heartbeats = asyncio.create_task(
                                self._heartbeats(call), name=f"cpclient-heartbeats:{self.identity.node_id}"
                            )
                    elif kind == "assignment":
                        await self._on_assignment(call, modules, message.assignment)
                    elif kind == "purge":
                        await self._on_purge(call, message.purge)
            finally:
                self._call = None
                if heartbeats is not None:
                    heartbeats.cancel()
                    await asyncio.wait([heartbeats])
                call.cancel()
        finally:
            if self._shared_channel is None:
                await channel.close()

    def _hello(self) -> nodes_pb2.NodeHello:
        hello = nodes_pb2.NodeHello(
            node_id=self.identity.node_id,
            region=self.identity.region,
            pop=self.identity.pop,
            address=self.identity.address,
            assignment_version=self.state.version,
            module_sha256s=list(self._store.digests()),
            agent_version=self.identity.agent_version,
            capacity_rps=self.identity.capacity_rps,
            purge_sequence=self.purge_state.sequence,
            cache_empty=self.purge_state.empty,
        )
        if self.state.app is not None:
            hello.app.CopyFrom(self.state.app)
        return hello

    async def _write(self, call: Call, message: nodes_pb2.NodeMessage) -> None:
        async with self._write_lock, asyncio.timeout(WRITE_TIMEOUT_S):
            await call.write(message)

    async def _heartbeats(self, call: Call) -> None:
        while True:
            await asyncio.sleep(max(self.params.heartbeat_interval_ms, 10) / 1000)
            if not await self._heartbeat(call):
                return  # the read loop sees the broken stream and ends the session

    async def _heartbeat(self, call: Call, *, last: bool = False) -> bool:
        """Send one heartbeat (load, and the figures not reported yet); False when the
        stream is broken, in which case its figures go with the next session's first."""
        heartbeat = self._figures.take() if self._figures is not None else nodes_pb2.Heartbeat()
        heartbeat.load.CopyFrom(self._load())
        heartbeat.last = last
        heartbeat.sent_at.GetCurrentTime()
        try:
            await self._write(call, nodes_pb2.NodeMessage(heartbeat=heartbeat))
        except (grpc.aio.AioRpcError, grpc.aio.UsageError, TimeoutError):
            self._give_back(heartbeat)
            return False
        except asyncio.CancelledError:
            self._give_back(heartbeat)
            raise
        return True

    def _give_back(self, heartbeat: nodes_pb2.Heartbeat) -> None:
        if self._figures is not None:
            self._figures.give_back(heartbeat)

    async def _last_heartbeat(self) -> None:
        """Stopping: send the figures counted since the last heartbeat, if the session is up."""
        call = self._call
        if call is None or not self.connected:
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(LAST_HEARTBEAT_TIMEOUT_S):
                await self._heartbeat(call, last=True)

    # -- purges --------------------------------------------------------------------------

    async def _on_purge(self, call: Call, purge: nodes_pb2.CachePurge) -> None:
        """Run the node's purge and answer PurgeDone; a failing purge answers 0 and the
        session goes on (the operator sees the count, the node's log says why)."""
        removed = 0
        if self._purge is not None:
            selector = PurgeSelector(
                urls=tuple(purge.urls),
                prefixes=tuple(purge.path_prefixes),
                tags=tuple(purge.tags),
                everything=purge.everything,
            )
            try:
                outcome = self._purge(selector, purge.soft)
                if inspect.isawaitable(outcome):
                    outcome = await outcome
                removed = max(0, int(outcome))
            except Exception:  # a failing cache must not end the session
                logger.exception("node %s: purge %s failed", self.identity.node_id, purge.purge_id)
        self.stats.purges += 1
        if self.purge_state.carried_out(purge.sequence) and self.purge_state.persisted:
            await asyncio.to_thread(self.purge_state.save)
        done = nodes_pb2.PurgeDone(purge_id=purge.purge_id, entries_removed=removed)
        await self._write(call, nodes_pb2.NodeMessage(purge_done=done))
        self._touch()

    # -- assignments ---------------------------------------------------------------------

    async def _on_assignment(
        self, call: Call, modules: modules_pb2_grpc.ModuleServiceAsyncStub, assignment: nodes_pb2.Assignment
    ) -> None:
        self.stats.assignments += 1
        try:
            blobs = await self._gather_modules(modules, assignment.app)
            outcome = self._apply(assignment, blobs)
            if inspect.isawaitable(outcome):
                await outcome
        except ModuleFetchError as exc:
            await self._nack(call, assignment, exc.code, exc.reason, exc.sha256)
        except ApplyError as exc:
            await self._nack(call, assignment, exc.code, exc.reason, exc.sha256)
        except Exception as exc:  # noqa: BLE001 - any failure of the node's apply is a NACK
            await self._nack(call, assignment, "apply_failed", f"{type(exc).__name__}: {exc}", "")
        else:
            self.state = AppliedState(version=assignment.version, app=assignment.app)
            await self._write(
                call,
                nodes_pb2.NodeMessage(
                    ack=nodes_pb2.AssignmentAck(version=assignment.version, nonce=assignment.nonce)
                ),
            )
            self.stats.acks += 1
        self._touch()

    async def _gather_modules(
        self, stub: modules_pb2_grpc.ModuleServiceAsyncStub, app: apps_pb2.AppVersion
    ) -> dict[str, bytes]:
        wanted = sorted({module.sha256 for module in app.modules})
        missing = [sha for sha in wanted if not self._store.has(sha)]
        fetched = await asyncio.gather(
            *(
                fetch_module(stub, sha, metadata=self._metadata, timeout_s=self.settings.fetch_timeout_s)
                for sha in missing
            )
        )
        for sha, data in zip(missing, fetched, strict=True):
            self._store.put(sha, data)
            self.stats.modules_downloaded += 1
            self.stats.bytes_downloaded += len(data)
        return {sha: self._store.get(sha) for sha in wanted}

    async def _nack(
        self, call: Call, assignment: nodes_pb2.Assignment, code: str, reason: str, sha256: str
    ) -> None:
        logger.warning("node %s refuses version %s: %s", self.identity.node_id, assignment.version, reason)
        self.stats.nacks += 1
        self.stats.last_error = reason
        nack = nodes_pb2.AssignmentNack(
            version=self.state.version,
            nonce=assignment.nonce,
            rejected_version=assignment.version,
            error=common_pb2.ErrorDetail(code=code, message=reason, module_sha256=sha256),
        )
        await self._write(call, nodes_pb2.NodeMessage(nack=nack))


Call = grpc.aio.StreamStreamCall[nodes_pb2.NodeMessage, nodes_pb2.ControlMessage]
