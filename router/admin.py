"""Admin endpoints of the router: the routing decision as JSON (what a GeoDNS would
answer), every region and node with health, load and ejections, Prometheus metrics, and
the WAN fault overlay (``router.fault_admin``).

They share the data-plane port under reserved paths (``/_router/...``, ``/metrics``,
``/healthz``); every other path is proxied to the edge. Each endpoint is a plain function
of an :class:`AdminCall` (the request, its small body read whole) to an
:class:`AdminAnswer`, registered per path and method in :class:`AdminRoutes`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs

from geo.errors import InvalidAddressError
from geo.world import World
from router.admin_http import AdminAnswer, AdminCall, AdminRoutes
from router.fault_admin import fault_routes
from router.faults import FaultTable
from router.fleet import Fleet
from router.headers import describe_candidates
from router.metrics import RouterMetrics
from router.policy import ClientPlace, RoutingPolicy
from router.proxy import RouterHandler


def admin_endpoints(
    *,
    router_id: str,
    world: World,
    fleet: Fleet,
    policy: RoutingPolicy,
    handler: RouterHandler,
    metrics: RouterMetrics,
    wan: bool,
    faults: FaultTable,
    admin_token: str,
    clock: Callable[[], float] = time.monotonic,
) -> AdminRoutes:
    def healthz(_: AdminCall) -> AdminAnswer:
        return AdminAnswer.json({"status": "ok", "router": router_id})

    def resolve(request: AdminCall) -> AdminAnswer:
        query = parse_qs(request.query)
        ip = query.get("ip", [""])[0].strip()
        if not ip:
            return _bad_request("give the client address to resolve: /_router/resolve?ip=ADDR")
        try:
            location = handler.locator.locate(ip)
        except InvalidAddressError as exc:
            return _bad_request(str(exc))
        pin = query.get("pin", [None])[0]
        place = ClientPlace(address=ip, latitude=location.latitude, longitude=location.longitude, pin=pin)
        candidates = policy.plan(place, fleet.views())
        return AdminAnswer.json(
            {
                "ip": ip,
                "location": location.as_dict(),
                "route": describe_candidates(candidates[:1])[0] if candidates else None,
                "candidates": describe_candidates(candidates),
            }
        )

    def status(_: AdminCall) -> AdminAnswer:
        body = fleet_status(router_id=router_id, world=world, fleet=fleet, wan=wan)
        body["fast_path"] = {"enabled": handler.fast_path_enabled, "requests_total": handler.fast_requests}
        now = clock()
        body["faults"] = [fault.describe(now) for fault in faults.active(now)]
        return AdminAnswer.json(body)

    def metrics_text(_: AdminCall) -> AdminAnswer:
        for region, count in _routable_by_region(world, fleet).items():
            metrics.nodes_routable.labels(region).set(count)
        return AdminAnswer(200, metrics.content_type.encode(), metrics.exposition())

    fault_paths = fault_routes(
        faults, regions=[region.id for region in world.regions], admin_token=admin_token, clock=clock
    )
    return AdminRoutes(
        {
            "/healthz": {"GET": healthz},
            "/_router/resolve": {"GET": resolve},
            "/_router/status": {"GET": status},
            "/metrics": {"GET": metrics_text},
            "/_router/faults": fault_paths.table,
        },
        {"/_router/faults/": fault_paths.region},
    )


def _bad_request(message: str) -> AdminAnswer:
    return AdminAnswer.error(400, "bad_request", message)


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
