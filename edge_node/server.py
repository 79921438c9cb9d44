"""The edge node's process lifecycle: build the engine, geo database, app, pipeline and
HTTP adapter (``edge_node.http_adapter``) on an ``httpfront`` server, join the control
plane when one is given, and stop in order (listener first).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
from contextlib import AsyncExitStack

import aiohttp
from prometheus_client import generate_latest

from cpclient import (
    AppliedState,
    Backoff,
    DirectoryModuleStore,
    NodeSession,
    PurgeState,
    SessionSettings,
    tls_settings,
)
from cpclient import NodeIdentity as SessionIdentity
from cpclient import purge_state as purge_state_file
from cpclient.session import ApplyCallback, LoadProvider, PurgeCallback
from cpclient.session_model import HeartbeatFigures
from edge_node.admin import admin_endpoints
from edge_node.agent import AssignmentApplier
from edge_node.app import load_app
from edge_node.cache_flow import EdgeCache
from edge_node.config import EdgeNodeConfig
from edge_node.figures import AppFiguresCollector, FiguresBook
from edge_node.geo_headers import NodeIdentity
from edge_node.http_adapter import EdgeHttpHandler
from edge_node.iot import IotFollower, no_broker_answer
from edge_node.load import LoadTracker
from edge_node.metrics import EdgeMetrics
from edge_node.origin import AiohttpOriginFetcher, origin_connector
from edge_node.outbound import NodeOutbound, OutboundMetrics, outbound_session
from edge_node.pipeline import (
    CacheLookup,
    CacheThrough,
    ExecuteWasm,
    Pipeline,
    ResolveClient,
    ResolveGeo,
    Route,
)
from edge_node.state import NodeState
from edge_node.telemetry import start_telemetry
from edge_node.worker_link import WorkerSide, WorkerStats
from edge_node.worker_stats import MergedCollector, sample_rows
from geo.lookup import GeoLocator
from geo.world import load_world
from httpcache.disk import DiskTier
from httpcache.offloop import OffLoopDisk
from httpcache.store import MemoryTier, TieredCache
from httpfront.server import FrontendServer
from protos.edgecdn.v1 import nodes_pb2
from runtime.process import StopEvent, wait_for_stop
from runtime.ready import ReadyCallback
from wasm_host.component_cache import ComponentCache
from wasm_host.config import EngineConfig
from wasm_host.engine import WasmEngine
from wasm_host.executor import WasmExecutor

logger = logging.getLogger(__name__)

SERVICE_NAME = "edge-node"
ORIGIN_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 2.0


async def run(
    config: EdgeNodeConfig, *, ready: ReadyCallback | None = None, stop: StopEvent | None = None
) -> None:
    """Serve until ``stop`` is set (or the task is cancelled): the app from ``--app``, the last
    good assignment from disk, and then whatever the control plane assigns."""
    world = load_world(config.world)
    region = world.region(config.region)
    node = NodeIdentity(node_id=config.node_id, region=region.id, pop=region.pop)
    metrics = EdgeMetrics()
    load = LoadTracker(capacity_rps=config.capacity_rps)
    async with AsyncExitStack() as stack:
        telemetry = await start_telemetry(
            stack,
            node,
            control_plane=config.control_plane,
            token=config.token,
            control_plane_tls=config.control_plane_tls,
            sample_ratio=config.trace_sample_ratio,
        )
        figures = FiguresBook(spans_dropped=_no_spans if telemetry is None else telemetry.spans_dropped)
        AppFiguresCollector(figures, metrics.registry)
        engine = stack.enter_context(WasmEngine(EngineConfig()))
        locator = stack.enter_context(
            GeoLocator.for_world(
                world,
                cache_dir=config.geo_cache_dir,
                extra_databases=config.geo_dbs,
                on_bad_record=metrics.count_geo_bad_record,
                on_reload=metrics.count_geo_reload,
            )
        )
        modules = ComponentCache(engine, config.module_cache_dir)
        executor = WasmExecutor()
        stack.callback(executor.close)
        state = NodeState()
        if config.app is not None:
            app = load_app(config.app, engine=engine, cache=modules, figures=figures.cell)
            for module in app.modules.values():
                metrics.module_cache.labels(module.compiled_from).inc()
            state.swap(app)
        applier = None
        if config.control_plane is not None or config.worker_fd is not None:
            applier = AssignmentApplier(
                state=state,
                engine=engine,
                cache=modules,
                store=DirectoryModuleStore(config.module_store_dir),
                executor=executor,
                data_dir=config.data_dir,
                figures=figures.cell,
                trusted=config.trusted_keys,
            )
            restored = applier.restore()  # before listening: serve the last good app at once
        client = await stack.enter_async_context(
            aiohttp.ClientSession(connector=origin_connector(), auto_decompress=False)
        )
        outbound_client = await stack.enter_async_context(outbound_session(config.allow_outbound_networks))
        follower = _follow_gateways(stack, config, node, metrics)
        cache = _http_cache(stack, config)
        worker = None
        if config.worker_fd is not None and applier is not None:
            worker = await _supervisor_link(
                config, applier=applier, cache=cache, figures=figures, load=load, metrics=metrics
            )
        handler = EdgeHttpHandler(
            pipeline=_pipeline(
                config=config,
                node=node,
                state=state,
                locator=locator,
                executor=executor,
                client=client,
                outbound_client=outbound_client,
                metrics=metrics,
                cache=cache,
            ),
            node=node,
            metrics=metrics,
            load=load,
            admin=dict(
                admin_endpoints(
                    node=node,
                    state=state,
                    metrics=metrics,
                    iot=no_broker_answer if follower is None else follower.answer,
                    exposition=None if worker is None else lambda: _node_exposition(metrics, worker),
                    worker=None if worker is None else {"index": config.worker_index, "pid": os.getpid()},
                )
            ),
            max_body_bytes=config.max_body_bytes,
            current_app=lambda: state.app,
            telemetry=telemetry,
        )
        url = await _listen(stack, handler, config)
        logger.info("edge node %s (%s) serving on %s", node.node_id, node.region, url)
        if ready is not None:
            ready({"http": url})
        if worker is not None:  # one of --workers N: the supervisor holds the session
            worker.ready(url)
            await _serve_supervisor(worker, stop)
            return
        if applier is None or config.control_plane is None:
            await wait_for_stop(stop)
            return
        session = node_session(
            config,
            config.control_plane,
            node,
            url,
            apply=applier.apply,
            initial=restored,
            load=load.snapshot,
            figures=figures,
            purge=cache.purge,
            cached_on_disk=cache.disk is not None and cache.disk.stored(),
        )
        await session.run(stop)


def node_session(
    config: EdgeNodeConfig,
    control_plane: str,
    node: NodeIdentity,
    url: str,
    *,
    apply: ApplyCallback,
    initial: AppliedState,
    load: LoadProvider,
    figures: HeartbeatFigures,
    purge: PurgeCallback,
    cached_on_disk: bool,
) -> NodeSession:
    """The node's one control-plane session (a single process's, or ``--workers``' supervisor's)."""
    return NodeSession(
        SessionSettings(
            target=control_plane,
            token=config.token,
            tls=tls_settings(config.control_plane_tls),
            backoff=Backoff(maximum_s=config.reconnect_max_s),
        ),
        SessionIdentity(
            node_id=node.node_id,
            region=node.region,
            pop=node.pop,
            address=url,
            capacity_rps=config.capacity_rps,
        ),
        apply=apply,
        store=DirectoryModuleStore(config.module_store_dir),
        initial=initial,
        load=load,
        figures=figures,
        purge=purge,
        purge_state=purge_state(config, cached_on_disk=cached_on_disk),
    )


def _follow_gateways(
    stack: AsyncExitStack, config: EdgeNodeConfig, node: NodeIdentity, metrics: EdgeMetrics
) -> IotFollower | None:
    """Start following the region's gateways (with --mqtt); cancelled after the listener closes."""
    if config.mqtt is None:
        return None
    follower = IotFollower(
        link=config.mqtt,
        node=node,
        registry=metrics.registry,
        backoff=Backoff(maximum_s=config.reconnect_max_s),
    )
    task = asyncio.create_task(follower.run(), name="edge-iot-follower")

    async def cancel() -> None:
        task.cancel()
        await asyncio.wait({task})  # its CancelledError stays in the task; ours would propagate

    stack.push_async_callback(cancel)
    return follower


def _no_spans() -> int:
    return 0


def _pipeline(
    *,
    config: EdgeNodeConfig,
    node: NodeIdentity,
    state: NodeState,
    locator: GeoLocator,
    executor: WasmExecutor,
    client: aiohttp.ClientSession,
    outbound_client: aiohttp.ClientSession,
    metrics: EdgeMetrics,
    cache: EdgeCache,
) -> Pipeline:
    outbound = NodeOutbound(
        session=outbound_client,
        cache=cache,
        metrics=OutboundMetrics(metrics.registry),
        allowance=config.allow_outbound_networks,
        max_body_bytes=config.max_body_bytes,
    )
    execute_wasm = ExecuteWasm(executor=executor, metrics=metrics, fetcher_for=outbound.for_exchange)
    return Pipeline(
        before_execute=(
            ResolveClient(trusted=config.trusted_proxies, max_header_bytes=config.max_header_bytes),
            ResolveGeo(locate=locator.locate, node=node),
            Route(current_app=lambda: state.app),
            CacheLookup(cache=cache, metrics=metrics),
        ),
        execute_wasm=execute_wasm,
        through=CacheThrough(
            cache=cache,
            metrics=metrics,
            origin=AiohttpOriginFetcher(
                client, timeout_s=ORIGIN_TIMEOUT_S, max_body_bytes=config.max_body_bytes
            ),
            run_wasm=execute_wasm.run,
        ),
    )


def purge_state(config: EdgeNodeConfig, *, cached_on_disk: bool) -> PurgeState:
    """Where the node's cache stands in the control plane's purge log: kept beside the disk
    tier, which outlives the process; a cache in memory only starts empty."""
    if config.cache_dir is None:
        return PurgeState()
    return PurgeState(config.cache_dir / purge_state_file.FILE_NAME, cache_empty=not cached_on_disk)


async def _supervisor_link(
    config: EdgeNodeConfig,
    *,
    applier: AssignmentApplier,
    cache: EdgeCache,
    figures: FiguresBook,
    load: LoadTracker,
    metrics: EdgeMetrics,
) -> WorkerSide:
    """A worker's link to its supervisor (``edge_node.workers``), on the inherited socket."""
    reader, writer = await asyncio.open_connection(sock=socket.socket(fileno=config.worker_fd))
    store = DirectoryModuleStore(config.module_store_dir)
    pushed = [0, 0]  # requests and 5xx answered by the last push

    def blobs_of(assignment: nodes_pb2.Assignment) -> dict[str, bytes]:
        return {ref.sha256: store.get(ref.sha256) for ref in assignment.app.modules}

    async def apply(assignment: nodes_pb2.Assignment) -> None:
        await applier.apply(assignment, await asyncio.to_thread(blobs_of, assignment))

    def stats() -> WorkerStats:
        requests, errors = load.requests_total - pushed[0], load.errors_total - pushed[1]
        pushed[:] = [load.requests_total, load.errors_total]
        return WorkerStats(
            heartbeat=figures.take(),
            requests=requests,
            errors=errors,
            in_flight=load.in_flight,
            samples=sample_rows(metrics.registry),
        )

    return WorkerSide(reader, writer, apply=apply, purge=cache.purge, stats=stats)


def _node_exposition(metrics: EdgeMetrics, worker: WorkerSide) -> bytes:
    """This worker's metrics plus its siblings' (as the supervisor last summed them)."""
    return generate_latest(MergedCollector(metrics.registry, worker.others))


async def _serve_supervisor(worker: WorkerSide, stop: StopEvent | None) -> None:
    """Until ``stop``, or until the supervisor is gone (then this worker stops too)."""
    link = asyncio.create_task(worker.run(), name="edge-worker-link")
    stopped = asyncio.create_task(wait_for_stop(stop), name="edge-worker-stop")
    await asyncio.wait({link, stopped}, return_when=asyncio.FIRST_COMPLETED)
    for task in (link, stopped):
        task.cancel()
    await asyncio.gather(link, stopped, return_exceptions=True)


def _http_cache(stack: AsyncExitStack, config: EdgeNodeConfig) -> EdgeCache:
    """The node's HTTP cache: memory in front of the optional disk tier (--cache-dir), whose
    I/O runs on its own thread (closed after the listener, so queued writes finish)."""
    memory = MemoryTier(max_bytes=config.response_cache_bytes, max_entry_bytes=config.max_body_bytes)
    disk = None
    if config.cache_dir is not None:
        tier = DiskTier(
            config.cache_dir,
            max_bytes=config.cache_dir_bytes,
            max_entry_bytes=config.max_body_bytes,
            shared=config.worker_fd is not None,  # the node's other workers write there too
        )
        disk = OffLoopDisk(tier)
        stack.callback(disk.close)
    return EdgeCache(TieredCache(memory), clock=time.time, disk=disk)


async def _listen(stack: AsyncExitStack, handler: EdgeHttpHandler, config: EdgeNodeConfig) -> str:
    """Bind the data-plane port (stopped first on the way down) and return its URL."""
    # The server's own head limit sits well above ours so that the pipeline's check answers
    # 431 with a JSON reason; only heads beyond it are refused by the server itself.
    server = FrontendServer(
        handler, fast_path=handler.serve_now, max_head_bytes=max(64 * 1024, 2 * config.max_header_bytes)
    )
    host, port = await server.start(config.host, config.port, reuse_port=config.worker_fd is not None)
    stack.push_async_callback(server.close, SHUTDOWN_GRACE_S)  # LIFO: listeners stop first
    handler.server_port = port
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
