"""The edge node's HTTP adapter and process lifecycle.

A low-level aiohttp ``web.Server`` (no router, no middleware: the pipeline is the router)
hands each request to ``EdgeHttpHandler``, which reads the body within its limit, runs the
pipeline, and turns the outcome (or an ``EdgeNodeError``) into a response. Everything a
handler can do wrong ends as a JSON error for that one request; the node keeps serving.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import AsyncExitStack

import aiohttp
from aiohttp import web
from multidict import CIMultiDict

from cpclient import DirectoryModuleStore, NodeSession, SessionSettings
from cpclient import NodeIdentity as SessionIdentity
from edge_node.admin import AdminEndpoint, admin_endpoints
from edge_node.agent import AssignmentApplier
from edge_node.app import load_app
from edge_node.config import EdgeNodeConfig
from edge_node.errors import BodyTooLargeError, EdgeNodeError
from edge_node.geo_headers import NodeIdentity
from edge_node.http_cache import ResponseCache
from edge_node.load import LoadTracker
from edge_node.metrics import EdgeMetrics
from edge_node.origin import AiohttpOriginFetcher
from edge_node.pipeline import (
    CacheLookup,
    Exchange,
    ExecuteWasm,
    Pipeline,
    ResolveClient,
    ResolveGeo,
    Route,
    response_headers,
)
from edge_node.state import NodeState
from edge_node.telemetry import EdgeTelemetry, start_telemetry
from geo.lookup import GeoLocator
from geo.world import load_world
from runtime.process import StopEvent, wait_for_stop
from runtime.ready import ReadyCallback
from wasm_host.cache import ModuleCache
from wasm_host.config import EngineConfig
from wasm_host.engine import WasmEngine
from wasm_host.executor import WasmExecutor

logger = logging.getLogger(__name__)

SERVICE_NAME = "edge-node"
ORIGIN_TIMEOUT_S = 10.0
SHUTDOWN_GRACE_S = 2.0
# Responses the handler must not set itself: aiohttp frames the body.
FRAMING_HEADERS = frozenset({"content-length", "transfer-encoding", "connection"})
# Response headers only the node may state (which node, region, PoP; cache outcome).
NODE_FACT_PREFIXES = ("x-edge-", "x-cache")


class EdgeHttpHandler:
    """The aiohttp request handler: admin paths, else the pipeline."""

    def __init__(
        self,
        *,
        pipeline: Pipeline,
        node: NodeIdentity,
        metrics: EdgeMetrics,
        load: LoadTracker,
        admin: dict[str, AdminEndpoint],
        max_body_bytes: int,
        telemetry: EdgeTelemetry | None = None,
    ) -> None:
        self._pipeline = pipeline
        self._telemetry = telemetry
        self._node = node
        self._metrics = metrics
        self._load = load
        self._admin = admin
        self._max_body_bytes = max_body_bytes
        self.server_port = 80  # set once the listener is bound; SERVER_PORT for handlers

    async def __call__(self, request: web.BaseRequest) -> web.StreamResponse:
        admin = self._admin.get(request.path)
        if admin is not None:
            return await admin(request)
        self._metrics.in_flight.inc()
        self._load.started()
        exchange = _exchange(request, self.server_port)
        telemetry = self._telemetry
        if telemetry is not None:
            exchange.trace = telemetry.begin(request.headers)
        error: EdgeNodeError | None = None
        try:
            exchange.body = await _read_body(request, self._max_body_bytes)
            result = await self._pipeline.serve(exchange)
            headers = CIMultiDict((k, v) for k, v in result.headers if k not in FRAMING_HEADERS)
            for name, value in response_headers(exchange, self._node):
                if name.startswith(NODE_FACT_PREFIXES):
                    headers[name] = value  # the node's own facts replace what a handler claimed
                else:
                    headers.add(name, value)
            response = web.Response(status=result.status, body=result.body, headers=headers)
        except EdgeNodeError as exc:
            error = exc
            response = self._error(exchange, exc)
        except Exception:
            logger.exception("unexpected failure serving %s %s", request.method, request.path)
            error = EdgeNodeError("the edge node failed unexpectedly")
            response = self._error(exchange, error)
        finally:
            self._metrics.in_flight.dec()
        self._metrics.count_request(exchange.route_label, response.status)
        self._load.finished(response.status)
        if exchange.trace is not None and telemetry is not None:
            telemetry.record(exchange.trace, exchange, response.status, error)
        return response

    def _error(self, exchange: Exchange, error: EdgeNodeError) -> web.Response:
        headers = CIMultiDict(response_headers(exchange, self._node))
        headers["content-type"] = "application/json"
        response = web.Response(
            status=error.status, body=json.dumps(error.to_json()).encode(), headers=headers
        )
        if isinstance(error, BodyTooLargeError):
            response.force_close()  # the rest of the body is still on the wire
        return response


def _exchange(request: web.BaseRequest, server_port: int) -> Exchange:
    host = request.host.rsplit(":", 1)[0] if request.host else "localhost"
    return Exchange(
        method=request.method,
        path=request.path,
        query=request.query_string,
        headers=list(request.headers.items()),
        body=b"",
        peer=request.remote or "",
        scheme=request.scheme,
        host=host,
        port=server_port,
    )


async def _read_body(request: web.BaseRequest, limit: int) -> bytes:
    if not request.body_exists:
        return b""
    if request.content_length is not None and request.content_length > limit:
        raise BodyTooLargeError(
            f"request body of {request.content_length} bytes exceeds the limit of {limit}", limit_bytes=limit
        )
    body = bytearray()
    while chunk := await request.content.readany():
        body += chunk
        if len(body) > limit:
            raise BodyTooLargeError(f"request body exceeds the limit of {limit} bytes", limit_bytes=limit)
    return bytes(body)


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
        engine = stack.enter_context(WasmEngine(EngineConfig()))
        locator = stack.enter_context(
            GeoLocator.for_world(world, cache_dir=config.geo_cache_dir, extra_databases=config.geo_dbs)
        )
        modules = ModuleCache(engine, config.module_cache_dir)
        executor = WasmExecutor()
        stack.callback(executor.close)
        state = NodeState()
        if config.app is not None:
            app = load_app(config.app, engine=engine, cache=modules)
            for module in app.modules.values():
                metrics.module_cache.labels(module.compiled_from).inc()
            state.swap(app)
        applier = None
        if config.control_plane is not None:
            applier = AssignmentApplier(
                state=state,
                engine=engine,
                cache=modules,
                store=DirectoryModuleStore(config.module_store_dir),
                executor=executor,
                data_dir=config.data_dir,
            )
            restored = applier.restore()  # before listening: serve the last good app at once
        client = await stack.enter_async_context(aiohttp.ClientSession(auto_decompress=False))
        telemetry = await start_telemetry(
            stack,
            node,
            control_plane=config.control_plane,
            token=config.token,
            sample_ratio=config.trace_sample_ratio,
        )
        handler = EdgeHttpHandler(
            pipeline=_pipeline(
                config=config,
                node=node,
                state=state,
                locator=locator,
                executor=executor,
                client=client,
                metrics=metrics,
            ),
            node=node,
            metrics=metrics,
            load=load,
            admin=dict(admin_endpoints(node=node, state=state, metrics=metrics)),
            max_body_bytes=config.max_body_bytes,
            telemetry=telemetry,
        )
        url = await _listen(stack, handler, config)
        logger.info("edge node %s (%s) serving on %s", node.node_id, node.region, url)
        if ready is not None:
            ready({"http": url})
        if applier is None or config.control_plane is None:
            await wait_for_stop(stop)
            return
        session = NodeSession(
            SessionSettings(target=config.control_plane, token=config.token),
            SessionIdentity(
                node_id=node.node_id,
                region=node.region,
                pop=node.pop,
                address=url,
                capacity_rps=config.capacity_rps,
            ),
            apply=applier.apply,
            store=DirectoryModuleStore(config.module_store_dir),
            initial=restored,
            load=load.snapshot,
        )
        await session.run(stop)


def _pipeline(
    *,
    config: EdgeNodeConfig,
    node: NodeIdentity,
    state: NodeState,
    locator: GeoLocator,
    executor: WasmExecutor,
    client: aiohttp.ClientSession,
    metrics: EdgeMetrics,
) -> Pipeline:
    cache = ResponseCache(max_bytes=config.response_cache_bytes, max_entry_bytes=config.max_body_bytes)
    return Pipeline(
        before_execute=(
            ResolveClient(trusted=config.trusted_proxies, max_header_bytes=config.max_header_bytes),
            ResolveGeo(locate=locator.locate, node=node),
            Route(current_app=lambda: state.app),
            CacheLookup(cache=cache, clock=time.time),
        ),
        execute_wasm=ExecuteWasm(executor=executor, metrics=metrics),
        origin=AiohttpOriginFetcher(client, timeout_s=ORIGIN_TIMEOUT_S, max_body_bytes=config.max_body_bytes),
        cache=cache,
        clock=time.time,
        metrics=metrics,
    )


async def _listen(stack: AsyncExitStack, handler: EdgeHttpHandler, config: EdgeNodeConfig) -> str:
    """Bind the data-plane port (stopped first on the way down) and return its URL."""
    # The parser's own limits sit well above ours so that our check answers 431 with a
    # JSON reason; only a single line beyond them is refused by aiohttp itself (400).
    parser_limit = max(64 * 1024, 2 * config.max_header_bytes)
    # access_log goes to the low-level Server itself (a ServerRunner ignores it): no log
    # line per request on the hot path.
    server = web.Server(handler, max_line_size=parser_limit, max_field_size=parser_limit, access_log=None)
    runner = web.ServerRunner(server, handle_signals=False, shutdown_timeout=SHUTDOWN_GRACE_S)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)  # LIFO: listeners stop first
    site = web.TCPSite(runner, config.host, config.port, backlog=1024)
    await site.start()
    handler.server_port = runner.addresses[0][1]
    return _url(runner)


def _url(runner: web.ServerRunner) -> str:
    host, port = runner.addresses[0][:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
