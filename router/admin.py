"""Admin endpoints of the router: the routing decision as JSON (what a GeoDNS would
answer), every region and node with health, load and ejections, Prometheus metrics.

They share the data-plane port under reserved paths (``/_router/...``, ``/metrics``,
``/healthz``); every other path is proxied to the edge.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from geo.errors import InvalidAddressError
from geo.world import World
from router.fleet import Fleet
from router.metrics import RouterMetrics
from router.policy import ClientPlace, RoutingPolicy
from router.proxy import RouterHandler, describe_candidates

AdminEndpoint = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


def admin_endpoints(
    *,
    router_id: str,
    world: World,
    fleet: Fleet,
    policy: RoutingPolicy,
    handler: RouterHandler,
    metrics: RouterMetrics,
    wan: bool,
) -> Mapping[str, AdminEndpoint]:
    async def healthz(_: web.BaseRequest) -> web.StreamResponse:
        return web.json_response({"status": "ok", "router": router_id})

    async def resolve(request: web.BaseRequest) -> web.StreamResponse:
        ip = request.query.get("ip", "").strip()
        if not ip:
            return _bad_request("give the client address to resolve: /_router/resolve?ip=ADDR")
        try:
            location = handler.locator.locate(ip)
        except InvalidAddressError as exc:
            return _bad_request(str(exc))
        place = ClientPlace(
            address=ip, latitude=location.latitude, longitude=location.longitude, pin=request.query.get("pin")
        )
        candidates = policy.plan(place, fleet.views())
        return web.json_response(
            {
                "ip": ip,
                "location": location.as_dict(),
                "route": describe_candidates(candidates[:1])[0] if candidates else None,
                "candidates": describe_candidates(candidates),
            }
        )

    async def status(_: web.BaseRequest) -> web.StreamResponse:
        return web.json_response(fleet_status(router_id=router_id, world=world, fleet=fleet, wan=wan))

    async def metrics_text(_: web.BaseRequest) -> web.StreamResponse:
        for region, count in _routable_by_region(world, fleet).items():
            metrics.nodes_routable.labels(region).set(count)
        response = web.Response(body=metrics.exposition())
        response.headers["content-type"] = metrics.content_type
        return response

    return {
        "/healthz": healthz,
        "/_router/resolve": resolve,
        "/_router/status": status,
        "/metrics": metrics_text,
    }


def _bad_request(message: str) -> web.Response:
    return web.json_response({"error": "bad_request", "message": message}, status=400)


def _routable_by_region(world: World, fleet: Fleet) -> dict[str, int]:
    counts = {region.id: 0 for region in world.regions}
    for view in fleet.views():
        counts[view.region] = counts.get(view.region, 0) + int(view.healthy)
    return counts


def fleet_status(*, router_id: str, world: World, fleet: Fleet, wan: bool) -> dict[str, Any]:
    """Every region and its nodes: health (active and passive), load, ejections."""
    now = time.monotonic()
    views = {view.node_id: view for view in fleet.views()}
    regions = []
    for region in world.regions:
        nodes = []
        for entry in fleet.inventory.entries.values():
            if entry.region != region.id:
                continue
            health = fleet.health.record(entry.node_id)
            traffic = fleet.traffic(entry.node_id)
            view = views.get(entry.node_id)
            nodes.append(
                {
                    "node_id": entry.node_id,
                    "url": entry.url,
                    "source": entry.source,
                    "routable": health.routable(now),
                    "health": "up" if health.up else "down",
                    "last_check_error": health.last_check_error or None,
                    "ejected": now < health.ejected_until,
                    "ejected_for_s": round(max(0.0, health.ejected_until - now), 3),
                    "ejections_total": health.ejections_total,
                    "last_ejection_reason": health.last_ejection_reason or None,
                    "capacity_rps": entry.capacity_rps,
                    "utilization": round(view.utilization, 4) if view is not None else 0.0,
                    "in_flight": traffic.in_flight,
                    "requests_total": traffic.requests_total,
                }
            )
        regions.append(
            {
                "id": region.id,
                "pop": region.pop,
                "healthy_nodes": sum(1 for node in nodes if node["routable"]),
                "nodes": nodes,
            }
        )
    return {"router": router_id, "wan": "model" if wan else "off", "regions": regions}
