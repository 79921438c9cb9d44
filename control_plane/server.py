"""The control plane's gRPC server: lifecycle, state wiring, and the services it mounts.

State (SQLite + blob directory + generated tokens) lives in ``--data-dir``, locked for the
process's life so that a second control plane on it is refused (``control_plane.exclusive``);
the port is bound without SO_REUSEPORT for the same reason. Listeners start
last and stop first: the health service reports NOT_SERVING and node sessions are closed
before the server drains, so nodes reconnect elsewhere (or later) promptly.
"""

from __future__ import annotations

import asyncio
import logging
import os
import tempfile
import time
from contextlib import AsyncExitStack, closing
from pathlib import Path
from typing import cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc

from control_plane.app_usage import AppUsage
from control_plane.apps import AppRegistry
from control_plane.auth import TokenTable, ensure_generated_tokens, load_tokens_file
from control_plane.blobs import BlobStore
from control_plane.compile_check import ModuleValidator
from control_plane.config import ControlPlaneConfig
from control_plane.db import Database
from control_plane.decoding import StrictDecodingInterceptor
from control_plane.exclusive import NO_PORT_SHARING, DataDirLock, listen_error
from control_plane.fleet import Fleet
from control_plane.gateways.coordinator import Coordinator
from control_plane.gateways.service import GatewayServicer, UnconfiguredGatewayServicer
from control_plane.grpc_handlers import GenericRegistration
from control_plane.interceptor import AuthInterceptor, MetricsInterceptor, StreamClosingInterceptor
from control_plane.metrics import ControlPlaneMetrics
from control_plane.metrics_http import MetricsServer
from control_plane.metrics_state import state_reader
from control_plane.modules import ModuleRegistry
from control_plane.node_services import NodeServicer, NodeSessionServicer
from control_plane.purge_log import PurgeLog
from control_plane.purges import CacheServicer, PurgeBook
from control_plane.rollouts.driver import RolloutDriver
from control_plane.rollouts.figures import HeartbeatFigures
from control_plane.rollouts.service import RolloutServicer
from control_plane.rollouts.store import RolloutStore
from control_plane.services import AppServicer, DeploymentServicer, ModuleServicer
from control_plane.telemetry import TracingInterceptor, control_plane_provider
from control_plane.traces.collector import Collector
from control_plane.traces.forward import OtlpForwarder
from control_plane.traces.services import TraceQueryServicer, TraceReceiver
from control_plane.traces.stats import RollingStats
from control_plane.traces.store import TraceStore
from protos.edgecdn.v1 import (
    apps_pb2,
    apps_pb2_grpc,
    cache_pb2,
    cache_pb2_grpc,
    deployments_pb2,
    deployments_pb2_grpc,
    gateways_pb2,
    gateways_pb2_grpc,
    modules_pb2,
    modules_pb2_grpc,
    nodes_pb2,
    nodes_pb2_grpc,
    rollouts_pb2,
    rollouts_pb2_grpc,
    traces_pb2,
    traces_pb2_grpc,
)
from runtime.process import StopEvent, wait_for_stop
from runtime.ready import ReadyCallback
from tracing.settings import ExportSettings, parse_endpoint, parse_headers

logger = logging.getLogger(__name__)

SERVICE_NAME = "control-plane"
MAX_MESSAGE_BYTES = 8 * 1024 * 1024
MAX_PENDING_CALLS = 20_000
TOKENS_FILE_NAME = "tokens.json"
SERVICES = (
    modules_pb2.DESCRIPTOR.services_by_name["ModuleService"].full_name,
    apps_pb2.DESCRIPTOR.services_by_name["AppService"].full_name,
    deployments_pb2.DESCRIPTOR.services_by_name["DeploymentService"].full_name,
    nodes_pb2.DESCRIPTOR.services_by_name["NodeSessionService"].full_name,
    nodes_pb2.DESCRIPTOR.services_by_name["NodeService"].full_name,
    cache_pb2.DESCRIPTOR.services_by_name["CacheService"].full_name,
    traces_pb2.DESCRIPTOR.services_by_name["TraceQueryService"].full_name,
    rollouts_pb2.DESCRIPTOR.services_by_name["RolloutService"].full_name,
    gateways_pb2.DESCRIPTOR.services_by_name["GatewayService"].full_name,
    trace_service_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name,
)


def _tokens(config: ControlPlaneConfig, data_dir: Path) -> TokenTable:
    if config.tokens_file is not None:
        return load_tokens_file(config.tokens_file)
    path = data_dir / TOKENS_FILE_NAME
    table = ensure_generated_tokens(path)
    logger.info("no --tokens given: tokens for viewer, operator and node are in %s", path)
    return table


def _add_port(server: grpc.aio.Server, config: ControlPlaneConfig) -> int:
    target = f"{config.host}:{config.port}"
    try:
        if config.tls_cert is None or config.tls_key is None:
            port = server.add_insecure_port(target)
        else:
            credentials = grpc.ssl_server_credentials(
                [(config.tls_key.read_bytes(), config.tls_cert.read_bytes())],
                root_certificates=None if config.client_ca is None else config.client_ca.read_bytes(),
                require_client_auth=config.client_ca is not None,
            )
            port = server.add_secure_port(target, credentials)
    except RuntimeError as exc:  # grpc's "Failed to bind to address": say why, as an error of ours
        raise listen_error(config.host, config.port) from exc
    if port == 0:  # older grpc releases report a failed bind this way
        raise listen_error(config.host, config.port)
    return port


async def _sweep(fleet: Fleet, interval_s: float) -> None:
    while True:
        await asyncio.sleep(interval_s)
        fleet.sweep()


async def run(
    config: ControlPlaneConfig, *, ready: ReadyCallback | None = None, stop: StopEvent | None = None
) -> None:
    """Serve until ``stop`` is set (or the task is cancelled), then shut down gracefully."""
    async with AsyncExitStack() as stack:
        if config.data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="edgecdn-cp-")))
            logger.warning("no --data-dir: state is kept in %s and removed at exit", data_dir)
        else:
            data_dir = config.data_dir
            data_dir.mkdir(parents=True, exist_ok=True)
        # Before anything in it is opened: a second control plane stops here, naming the first.
        lock = stack.enter_context(DataDirLock(data_dir))
        tokens = _tokens(config, data_dir)
        db = stack.enter_context(closing(Database(data_dir / "control-plane.sqlite3")))
        validator = stack.enter_context(
            ModuleValidator(cache_dir=config.module_cache_dir or data_dir / "compiled")
        )
        modules = ModuleRegistry(db, BlobStore(data_dir / "modules"), validator)
        apps = AppRegistry(db, modules, origins=config.origin_policy)
        fleet = Fleet(
            db,
            apps,
            heartbeat_interval_s=config.heartbeat_interval_s,
            missed_allowed=config.missed_heartbeats_allowed,
            vouches=tokens.vouches,
        )
        collector = await _collector(config, stack)
        coordinator = None if config.mqtt is None else Coordinator(config.mqtt, has_module=modules.has)
        rollouts = RolloutDriver(
            store=RolloutStore(db),
            fleet=fleet,
            apps=apps,
            figures=HeartbeatFigures(fleet.figures),
            world_regions=config.world_regions,
            gateways=coordinator,
            has_module=modules.has,
        )
        metrics = ControlPlaneMetrics()
        metrics.watch(state_reader(fleet=fleet, rollouts=rollouts, collector=collector, gateways=coordinator))
        await _serve(
            config,
            fleet,
            modules,
            apps,
            tokens,
            metrics=metrics,
            rollouts=rollouts,
            collector=collector,
            coordinator=coordinator,
            ready=ready,
            stop=stop,
            lock=lock,
        )


async def _collector(config: ControlPlaneConfig, stack: AsyncExitStack) -> Collector:
    forwarder = None
    if config.otlp_forward is not None:
        target, tls = parse_endpoint(config.otlp_forward, setting="--otlp-forward")
        # The collector's credentials, if it wants any, the standard way.
        headers = parse_headers(
            os.environ.get("OTEL_EXPORTER_OTLP_HEADERS", ""), setting="OTEL_EXPORTER_OTLP_HEADERS"
        )
        forwarder = await stack.enter_async_context(
            OtlpForwarder(ExportSettings(target=target, tls=tls, headers=headers))
        )
    return Collector(
        store=TraceStore(max_spans=config.trace_max_spans, retention_s=config.trace_retention_s),
        stats=RollingStats(bucket_s=config.stats_bucket_s, max_window_s=config.stats_max_window_s),
        forwarder=forwarder,
    )


def _add_services(
    server: grpc.aio.Server,
    *,
    fleet: Fleet,
    modules: ModuleRegistry,
    apps: AppRegistry,
    tokens: TokenTable,
    rollouts: RolloutDriver,
    collector: Collector,
    coordinator: Coordinator | None,
) -> health.aio.HealthServicer:
    """Mount every service (as generic handlers: ``GenericRegistration``); the health servicer."""
    health_servicer = health.aio.HealthServicer()
    # A stand-in with the two methods the generated functions call on a server.
    services = cast("grpc.aio.Server", GenericRegistration(server))
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, services)
    modules_pb2_grpc.add_ModuleServiceServicer_to_server(ModuleServicer(modules), services)
    apps_pb2_grpc.add_AppServiceServicer_to_server(
        AppServicer(apps, AppUsage(apps.db, fleet, rollouts)), services
    )
    deployments_pb2_grpc.add_DeploymentServiceServicer_to_server(
        DeploymentServicer(fleet, rollouts, tokens), services
    )
    rollouts_pb2_grpc.add_RolloutServiceServicer_to_server(
        RolloutServicer(rollouts, tokens, time.time), services
    )
    nodes_pb2_grpc.add_NodeSessionServiceServicer_to_server(NodeSessionServicer(fleet, tokens), services)
    nodes_pb2_grpc.add_NodeServiceServicer_to_server(NodeServicer(fleet), services)
    cache_pb2_grpc.add_CacheServiceServicer_to_server(
        CacheServicer(PurgeBook(fleet, PurgeLog(apps.db))), services
    )
    gateways_pb2_grpc.add_GatewayServiceServicer_to_server(
        UnconfiguredGatewayServicer() if coordinator is None else GatewayServicer(coordinator), services
    )
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceReceiver(collector), services)  # type: ignore[no-untyped-call]
    # edgectl stats counts from the nodes' own figures; spans give the per-route breakdown.
    query = TraceQueryServicer(collector, figures=fleet.figures)
    traces_pb2_grpc.add_TraceQueryServiceServicer_to_server(query, services)
    return health_servicer


async def _serve(
    config: ControlPlaneConfig,
    fleet: Fleet,
    modules: ModuleRegistry,
    apps: AppRegistry,
    tokens: TokenTable,
    *,
    metrics: ControlPlaneMetrics,
    rollouts: RolloutDriver,
    collector: Collector,
    coordinator: Coordinator | None,
    ready: ReadyCallback | None,
    stop: StopEvent | None,
    lock: DataDirLock,
) -> None:
    provider = control_plane_provider(
        collector, sample_ratio=config.trace_sample_ratio, address=f"{config.host}:{config.port}"
    )
    server = grpc.aio.server(
        interceptors=[
            # Outermost: it closes every streaming handler grpc left open (a failed write).
            StreamClosingInterceptor(),
            # Next, so that it sees every call's final status, the others' refusals included.
            MetricsInterceptor(metrics),
            TracingInterceptor(provider.get_tracer("edgecdn.control_plane")),
            AuthInterceptor(tokens),
            StrictDecodingInterceptor(),
        ],
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
            ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
            ("grpc.keepalive_time_ms", 20_000),
            ("grpc.keepalive_timeout_ms", 10_000),
            ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
            ("grpc.keepalive_permit_without_calls", 1),
            # Calls that arrived but that grpc.aio has not taken up yet: past the defaults
            # (1,000, hard 3,000) gRPC cancels them, and a deploy to 10,000 nodes starts
            # 10,000 DownloadModule calls at once: measured, over half were CANCELLED (NACKs).
            ("grpc.server.max_pending_requests", MAX_PENDING_CALLS),
            ("grpc.server.max_pending_requests_hard_limit", 2 * MAX_PENDING_CALLS),
            NO_PORT_SHARING,  # a second server on our port must fail to bind, not share it
        ],
    )
    health_servicer = _add_services(
        server, fleet=fleet, modules=modules, apps=apps, tokens=tokens, rollouts=rollouts,
        collector=collector, coordinator=coordinator,
    )  # fmt: skip
    reflection.enable_server_reflection(
        [health_pb2.DESCRIPTOR.services_by_name["Health"].full_name, reflection.SERVICE_NAME, *SERVICES],
        server,
    )
    port = _add_port(server, config)
    # The broker session is a client, not a listener: it may start (and retry) before we serve.
    gateways = (
        None if coordinator is None else asyncio.create_task(coordinator.run(), name="gateway-coordinator")
    )
    await server.start()
    # Listeners start last, after gRPC: a scrape never finds the figures of a half-built server.
    scrapes = None if config.metrics_port is None else MetricsServer(metrics)
    # Rollouts resume (and run) once the server listens: their deploys need nodes to reconnect.
    driver = asyncio.create_task(rollouts.run(), name="control-plane-rollouts")
    sweeper = asyncio.create_task(
        _sweep(fleet, config.heartbeat_interval_s / 2), name="control-plane-heartbeat-sweeper"
    )
    try:
        await health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        address = f"{config.host}:{port}"
        logger.info("control plane serving gRPC on %s", address)
        addresses = {"grpc": address}
        if scrapes is not None and config.metrics_port is not None:
            url = await scrapes.start(config.metrics_host or config.host, config.metrics_port)
            addresses["metrics"] = f"{url}/metrics"
            logger.info("control plane serving /metrics on %s", url)
        lock.describe(**addresses)
        if ready is not None:
            ready(addresses)
        await wait_for_stop(stop)
    finally:
        if scrapes is not None:
            await scrapes.close()
        sweeper.cancel()
        driver.cancel()
        await asyncio.wait([sweeper, driver])
        await health_servicer.enter_graceful_shutdown()
        fleet.close_all("shutting down")
        await server.stop(grace=config.grace_seconds)
        fleet.flush_answers()  # the ACKs received last are stored before the database closes
        if gateways is not None:
            gateways.cancel()
            await asyncio.wait([gateways])
        await asyncio.to_thread(provider.shutdown)  # flushes; the exporter may need this loop
        logger.info("control plane stopped")
