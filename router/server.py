"""The router process lifecycle: inventory, health checks, the HTTP listener, shutdown.

Start-up order: world and geo database, the edge inventory (flags, file, or a first
snapshot from the control plane), an upstream keep-alive pool, tracing, then the
listener last; on the way down the listener stops first. Background tasks (active
health checks, following the inventory) are named and stop with the ``stop`` event.
"""

from __future__ import annotations

import asyncio
import logging
import random
from contextlib import AsyncExitStack

import aiohttp

from cpclient.channel import tls_settings
from cpclient.inventory import NodeInventory
from geo.latency import LatencyModel
from geo.lookup import GeoLocator
from geo.world import World, load_world
from httpfront.messages import ClientLink, FastPath, FrontRequest, Handler, ResponseWriter
from httpfront.server import FrontendServer
from router.admin import admin_endpoints
from router.admin_http import (
    ADMIN_ELSEWHERE,
    ADMIN_PREFIXES,
    AdminAnswer,
    AdminRoutes,
    answer_admin,
    public_routes,
)
from router.checker import run_health_checks
from router.config import RouterConfig
from router.faults import FaultTable
from router.fleet import Fleet
from router.health import HealthBook
from router.inventory import (
    Inventory,
    entries_from_control_plane,
    follow_edges_file,
    parse_edge_flags,
    read_edges_file,
)
from router.metrics import RouterMetrics
from router.policy import RoutingPolicy
from router.proxy import RouterHandler
from router.telemetry import SERVICE_NAME, start_telemetry
from router.upstream import UpstreamPool
from router.wan import WanPath, WanSettings
from runtime.process import StopEvent, wait_for_stop
from runtime.ready import ReadyCallback

logger = logging.getLogger(__name__)

__all__ = ["SERVICE_NAME", "run"]

SHUTDOWN_GRACE_S = 2.0
INVENTORY_SYNC_TIMEOUT_S = 10.0


class _Dispatch:
    """Admin paths, else the proxy (one prefix test per proxied request).

    With ``--admin-port`` the public port keeps only ``/healthz`` (for load balancers) and
    answers 404 on the other reserved paths, never proxying them: an edge node's own
    ``/metrics`` must not leak through the front door either."""

    def __init__(self, proxy: RouterHandler, admin: AdminRoutes, *, admin_elsewhere: bool = False) -> None:
        self._proxy = proxy
        self._admin = admin
        self._admin_elsewhere = admin_elsewhere

    async def __call__(self, request: FrontRequest, writer: ResponseWriter) -> None:
        if not request.target.startswith(ADMIN_PREFIXES):
            await self._proxy(request, writer)
            return
        admin = self._admin.get(request.path)
        if admin is None:
            if self._admin_elsewhere:
                await _respond(writer, AdminAnswer.error(404, "not_found", ADMIN_ELSEWHERE))
            else:
                await self._proxy(request, writer)
            return
        await _respond(writer, await answer_admin(admin, request))

    def serve_now(self, request: FrontRequest, link: ClientLink) -> bool:
        """The proxy's fast path (``router.fastpath``), never for admin paths."""
        return not request.target.startswith(ADMIN_PREFIXES) and self._proxy.serve_now(request, link)


async def run(
    config: RouterConfig, *, ready: ReadyCallback | None = None, stop: StopEvent | None = None
) -> None:
    """Route until ``stop`` is set (or the task is cancelled)."""
    world = load_world(config.world)
    stop = stop or asyncio.Event()
    inventory = _initial_inventory(config, world)
    fleet = Fleet(inventory, HealthBook(config.health))
    latency = LatencyModel(world)
    policy = RoutingPolicy(world, latency)
    metrics = RouterMetrics()
    async with AsyncExitStack() as stack:
        locator = stack.enter_context(
            GeoLocator.for_world(
                world,
                cache_dir=config.geo_cache_dir,
                extra_databases=config.geo_dbs,
                on_bad_record=metrics.count_geo_bad_record,
                on_reload=metrics.count_geo_reload,
            )
        )
        # Health checks go through aiohttp (a few per second); requests through the lean pool.
        session = await stack.enter_async_context(aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()))
        upstream = UpstreamPool(
            connect_timeout_s=config.health.timeout_s, read_timeout_s=config.upstream_timeout_s
        )
        stack.callback(upstream.close)
        faults = FaultTable()  # set at run time through /_router/faults (router.fault_admin)
        wan = WanSettings(enabled=config.wan == "model", latency=latency, rng=random.Random(world.seed))  # noqa: S311 - seeded jitter, not secrets
        telemetry = await start_telemetry(
            stack,
            config.router_id,
            control_plane=config.control_plane,
            token=config.token,
            control_plane_tls=config.control_plane_tls,
            sample_ratio=config.trace_sample_ratio,
        )
        proxy = RouterHandler(
            fleet=fleet,
            policy=policy,
            locator=locator,
            upstream=upstream,
            trusted=config.trusted_proxies,
            wan=WanPath(wan, faults),
            metrics=metrics,
            telemetry=telemetry,
        )
        admin = admin_endpoints(
            router_id=config.router_id,
            world=world,
            fleet=fleet,
            policy=policy,
            handler=proxy,
            metrics=metrics,
            wan=config.wan == "model",
            faults=faults,
            admin_token=config.admin_token,
        )
        background_stop = asyncio.Event()
        # A failing background task (health checks, inventory) cancels the rest: a router
        # that no longer knows its nodes' health must not limp on.
        async with asyncio.TaskGroup() as group:
            group.create_task(
                run_health_checks(session, fleet, config.health, background_stop), name="router-health-checks"
            )
            try:
                await _follow_inventory(config, world, inventory, group, background_stop)
                async with AsyncExitStack() as listening:  # started last, stopped first
                    addresses = await _listen_all(listening, proxy, admin, config)
                    logger.info(
                        "router serving on %s with %d edge nodes", addresses["http"], len(inventory.entries)
                    )
                    if ready is not None:
                        ready(addresses)
                    await wait_for_stop(stop)
            finally:
                background_stop.set()


class _AdminOnly:
    """The ``--admin-port`` listener: the admin endpoints, nothing proxied."""

    def __init__(self, admin: AdminRoutes) -> None:
        self._admin = admin

    async def __call__(self, request: FrontRequest, writer: ResponseWriter) -> None:
        admin = self._admin.get(request.path)
        if admin is None:
            answer = AdminAnswer.error(
                404, "not_found", f"{request.path} is not an admin endpoint of the router"
            )
        else:
            answer = await answer_admin(admin, request)
        await _respond(writer, answer)


async def _respond(writer: ResponseWriter, answer: AdminAnswer) -> None:
    await writer.respond(answer.status, answer.head(), answer.body)


def _initial_inventory(config: RouterConfig, world: World) -> Inventory:
    if config.edges:
        return Inventory(parse_edge_flags(config.edges, world))
    if config.edges_file is not None:
        return Inventory(read_edges_file(config.edges_file, world))
    return Inventory()


async def _follow_inventory(
    config: RouterConfig, world: World, inventory: Inventory, group: asyncio.TaskGroup, stop: asyncio.Event
) -> None:
    if config.edges_file is not None:
        group.create_task(
            follow_edges_file(config.edges_file, world, inventory, stop), name="router-edges-file"
        )
    if config.control_plane is None:
        return
    watch = NodeInventory(
        config.control_plane,
        config.token,
        tls=tls_settings(config.control_plane_tls),
        on_change=lambda nodes: inventory.replace(entries_from_control_plane(nodes, world)),
    )
    group.create_task(watch.run(stop), name="router-node-inventory")
    try:
        await watch.wait_synced(INVENTORY_SYNC_TIMEOUT_S)
    except TimeoutError:
        # Serve anyway (503 until nodes are known): the control plane may come later.
        logger.warning(
            "no node inventory from %s yet (%s); serving without", config.control_plane, watch.last_error
        )


async def _listen_all(
    stack: AsyncExitStack, proxy: RouterHandler, admin: AdminRoutes, config: RouterConfig
) -> dict[str, str]:
    """The public listener and, with ``--admin-port``, the admin one: name -> URL."""
    if config.admin_port is None:
        dispatch = _Dispatch(proxy, admin)
        return {"http": await _listen(stack, dispatch, config.port, config, fast_path=dispatch.serve_now)}
    public = _Dispatch(proxy, public_routes(admin), admin_elsewhere=True)
    return {
        "http": await _listen(stack, public, config.port, config, fast_path=public.serve_now),
        "admin": await _listen(stack, _AdminOnly(admin), config.admin_port, config),
    }


async def _listen(
    stack: AsyncExitStack,
    handler: Handler,
    port: int,
    config: RouterConfig,
    *,
    fast_path: FastPath | None = None,
) -> str:
    """Bind a listener (stopped when ``stack`` closes) and return its URL."""
    server = FrontendServer(handler, config.client_timeouts, fast_path=fast_path)
    host, bound = await server.start(config.host, port)
    stack.push_async_callback(server.close, SHUTDOWN_GRACE_S)
    return f"http://[{host}]:{bound}" if ":" in host else f"http://{host}:{bound}"
