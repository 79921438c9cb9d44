"""Admin endpoints of the router: the routing decision as JSON (what a GeoDNS would
answer), every region and node with health, load and ejections, Prometheus metrics.

They share the data-plane port under reserved paths (``/_router/...``, ``/metrics``,
``/healthz``); every other path is proxied to the edge.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import parse_qs

from geo.errors import InvalidAddressError
from geo.world import World
from httpfront.messages import FrontRequest
from router.fleet import Fleet
from router.headers import describe_candidates
from router.metrics import RouterMetrics
from router.policy import ClientPlace, RoutingPolicy
from router.proxy import RouterHandler

# An endpoint answers (status, content type, body): small, whole answers.
AdminEndpoint = Callable[[FrontRequest], tuple[int, bytes, bytes]]
ADMIN_PREFIXES = (b"/_router/", b"/metrics", b"/healthz")
JSON = b"application/json"


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
    def healthz(_: FrontRequest) -> tuple[int, bytes, bytes]:
        return 200, JSON, _json({"status": "ok", "router": router_id})

    def resolve(request: FrontRequest) -> tuple[int, bytes, bytes]:
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
        return (
            200,
            JSON,
            _json(
                {
                    "ip": ip,
                    "location": location.as_dict(),
                    "route": describe_candidates(candidates[:1])[0] if candidates else None,
                    "candidates": describe_candidates(candidates),
                }
            ),
        )

    def status(_: FrontRequest) -> tuple[int, bytes, bytes]:
        body = fleet_status(router_id=router_id, world=world, fleet=fleet, wan=wan)
        body["fast_path"] = {"enabled": handler.fast_path_enabled, "requests_total": handler.fast_requests}
        return 200, JSON, _json(body)

    def metrics_text(_: FrontRequest) -> tuple[int, bytes, bytes]:
        for region, count in _routable_by_region(world, fleet).items():
            metrics.nodes_routable.labels(region).set(count)
        return 200, metrics.content_type.encode(), metrics.exposition()

    return {
        "/healthz": healthz,
        "/_router/resolve": resolve,
        "/_router/status": status,
        "/metrics": metrics_text,
    }


def _json(value: Any) -> bytes:
    return json.dumps(value).encode()


def _bad_request(message: str) -> tuple[int, bytes, bytes]:
    return 400, JSON, _json({"error": "bad_request", "message": message})


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
