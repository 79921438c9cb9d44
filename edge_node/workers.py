"""``edge-node --workers N``: one edge node served by N processes on one port.

An edge node is one Python process, so one core. With ``--workers N`` (nginx's
``worker_processes``, uvicorn's ``--workers``) this process becomes the node's supervisor:

- It reserves the port (a socket bound with SO_REUSEPORT and never listening, so that
  ``--port 0`` yields one port for all) and starts N workers, each a whole data plane
  (``edge_node.server.run``) listening on that port with SO_REUSEPORT: the kernel spreads
  connections over them.
- It holds the node's one control-plane session (one node in ``edgectl nodes list``, not
  N): an assignment is applied by every worker before it is ACKed (the modules are in the
  node's module store on disk, where the session put them), and a purge is carried out by
  every worker (their memory tiers; the ``--cache-dir`` tier is shared by all).
- Its heartbeats carry the workers' figures and load summed, and each worker's
  ``/metrics`` shows the node's sum (``edge_node.worker_stats``).
- A worker that dies is restarted (back-off up to 5 s); the others serve meanwhile. A
  worker dies with its supervisor (``EDGECDN_PARENT_PID``, and its link closing).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from collections.abc import Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

from google.protobuf.message import DecodeError

from cpclient import AppliedState, ApplyError
from edge_node.agent import LAST_GOOD_FILE
from edge_node.config import EdgeNodeConfig
from edge_node.figures import FiguresBook
from edge_node.geo_headers import NodeIdentity
from edge_node.load import LoadTracker
from edge_node.server import node_session
from edge_node.worker_link import LinkClosedError, SupervisorSide, WorkerStats
from edge_node.worker_stats import SampleBook, add_heartbeat
from geo.world import load_world
from httpcache.model import PurgeSelector
from protos.edgecdn.v1 import common_pb2, nodes_pb2
from runtime.process import PARENT_PID_ENV, StopEvent, wait_for_stop
from runtime.ready import ReadyCallback

logger = logging.getLogger(__name__)

WORKER_READY_TIMEOUT_S = 60.0
STOP_GRACE_S = 5.0
RESTART_BACKOFF = (0.1, 5.0)  # first wait, longest wait


class WorkerStartError(OSError):
    """A worker did not come up; the node does not start."""


def reserve_port(host: str, port: int) -> socket.socket:
    """A socket bound to ``host:port`` with SO_REUSEPORT, never listening: it holds the port
    (``port`` 0: picks one) while the workers listen beside it."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    reserved = socket.socket(family, socket.SOCK_STREAM)
    reserved.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        reserved.bind((host, port))
    except OSError:
        reserved.close()
        raise
    return reserved


def _has_files(cache_dir: Path | None) -> bool:
    return cache_dir is not None and any(cache_dir.glob("*/*/*"))


def last_good_state(config: EdgeNodeConfig) -> AppliedState:
    """What the workers restore at start (their last good assignment), for the session's hello."""
    try:
        assignment = nodes_pb2.Assignment.FromString((config.data_dir / LAST_GOOD_FILE).read_bytes())
    except (OSError, DecodeError):
        return AppliedState()
    return AppliedState(version=assignment.version, app=assignment.app)


class WorkerPool:
    """The node's workers: started, restarted, asked, and summed."""

    def __init__(self, config: EdgeNodeConfig, arguments: Sequence[str], port: int) -> None:
        self._config = config
        self._arguments = list(arguments)
        self._port = port
        self._links: dict[int, SupervisorSide] = {}
        self._processes: dict[int, asyncio.subprocess.Process] = {}
        self._stopping = False
        self.samples = SampleBook()
        self.spans_dropped = 0
        self.figures = FiguresBook(spans_dropped=lambda: self.spans_dropped)
        self.load = LoadTracker(capacity_rps=config.capacity_rps)
        self._in_flight: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        """Start every worker; the node's URL once all listen."""
        urls = await asyncio.gather(*(self._start(index) for index in range(self._config.workers)))
        for index in range(self._config.workers):
            self._spawn(self._keep_running(index), f"edge-worker-{index}-watch")
        return urls[0]

    async def _start(self, index: int) -> str:
        ours, theirs = socket.socketpair()
        argv = [
            sys.executable, "-m", "edge_node", *self._arguments,
            "--workers", "1", "--port", str(self._port),
            "--worker-fd", str(theirs.fileno()), "--worker-index", str(index),
        ]  # fmt: skip
        env = {**os.environ, PARENT_PID_ENV: str(os.getpid())}
        try:
            process = await asyncio.create_subprocess_exec(*argv, pass_fds=(theirs.fileno(),), env=env)
        finally:
            theirs.close()
        reader, writer = await asyncio.open_connection(sock=ours)
        link = SupervisorSide(index, reader, writer)
        self._links[index] = link
        self._processes[index] = process
        self._spawn(link.run(self._on_stats), f"edge-worker-{index}-link")
        try:
            url = await asyncio.wait_for(asyncio.shield(link.ready), WORKER_READY_TIMEOUT_S)
        except (TimeoutError, LinkClosedError) as exc:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            raise WorkerStartError(f"worker {index} did not start listening: {exc or 'timed out'}") from exc
        link.send_others(self.samples.others(index))  # the node's figures, before its first push
        return url

    async def _keep_running(self, index: int) -> None:
        wait = RESTART_BACKOFF[0]
        while True:
            returncode = await self._processes[index].wait()
            if self.stopping():
                return
            self.samples.retire(index)
            self._in_flight.pop(index, None)
            logger.warning("worker %d exited (%s); restarting it in %.1fs", index, returncode, wait)
            await asyncio.sleep(wait)
            try:
                await self._start(index)
                wait = RESTART_BACKOFF[0]
            except (OSError, WorkerStartError) as exc:
                logger.error("worker %d did not restart: %s", index, exc)
                wait = min(RESTART_BACKOFF[1], wait * 2)

    def _on_stats(self, index: int, stats: WorkerStats) -> None:
        self.samples.update(index, stats.samples)
        self.spans_dropped += add_heartbeat(self.figures, stats.heartbeat)
        self.load.requests_total += stats.requests
        self.load.errors_total += stats.errors
        self._in_flight[index] = stats.in_flight
        link = self._links.get(index)
        if link is not None:
            with contextlib.suppress(ConnectionError, RuntimeError):
                link.send_others(self.samples.others(index))

    def stopping(self) -> bool:
        return self._stopping

    def load_snapshot(self) -> common_pb2.Load:
        self.load.in_flight = sum(self._in_flight.values())
        return self.load.snapshot()

    async def apply(self, assignment: nodes_pb2.Assignment, blobs: Mapping[str, bytes]) -> None:
        """Every worker applies ``assignment`` (its modules are in the store); the first
        refusal is the node's NACK."""
        outcomes = await asyncio.gather(
            *(link.apply(assignment) for link in list(self._links.values())), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, ApplyError):
                raise outcome
            if isinstance(outcome, BaseException):
                raise ApplyError(code="worker_failed", reason=f"a worker did not apply it: {outcome!r}")

    async def purge(self, selector: PurgeSelector, soft: bool) -> int:
        outcomes = await asyncio.gather(
            *(link.purge(selector, soft) for link in list(self._links.values())), return_exceptions=True
        )
        return sum(outcome for outcome in outcomes if isinstance(outcome, int))

    async def stop(self) -> None:
        """SIGTERM every worker, SIGKILL those still running after the grace period."""
        self._stopping = True
        for process in self._processes.values():
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
        waits = [process.wait() for process in self._processes.values()]
        try:
            async with asyncio.timeout(STOP_GRACE_S):
                await asyncio.gather(*waits)
        except TimeoutError:
            for process in self._processes.values():
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)


async def supervise(
    config: EdgeNodeConfig,
    arguments: Sequence[str],
    *,
    ready: ReadyCallback | None = None,
    stop: StopEvent | None = None,
) -> None:
    """Run the node as ``config.workers`` workers until ``stop`` is set."""
    region = load_world(config.world).region(config.region)
    reserved = reserve_port(config.host, config.port)
    port = reserved.getsockname()[1]
    pool = WorkerPool(config, arguments, port)
    async with AsyncExitStack() as stack:
        stack.callback(reserved.close)
        stack.push_async_callback(pool.stop)
        url = await pool.start()
        logger.info("edge node %s serving on %s with %d workers", config.node_id, url, config.workers)
        if ready is not None:
            ready({"http": url})
        if config.control_plane is None:
            await wait_for_stop(stop)
            return
        session = node_session(
            config,
            config.control_plane,
            NodeIdentity(node_id=config.node_id, region=region.id, pop=region.pop),
            url,
            apply=pool.apply,
            initial=last_good_state(config),
            load=pool.load_snapshot,
            figures=pool.figures,
            purge=pool.purge,
            cached_on_disk=_has_files(config.cache_dir),
        )
        await session.run(stop)
