"""Admin endpoints of an edge node: liveness, readiness, Prometheus metrics, node info.

They share the data-plane port (the router's health checks and Prometheus scrape it),
so their paths are reserved: an app route at one of them is never reached.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aiohttp import web

from edge_node.geo_headers import NodeIdentity
from edge_node.metrics import EdgeMetrics
from edge_node.state import NodeState

AdminEndpoint = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]
ADMIN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/_edge/info"})


def admin_endpoints(
    *, node: NodeIdentity, state: NodeState, metrics: EdgeMetrics
) -> Mapping[str, AdminEndpoint]:
    async def healthz(_: web.BaseRequest) -> web.StreamResponse:
        return web.json_response({"status": "ok", "node": node.node_id})

    async def readyz(_: web.BaseRequest) -> web.StreamResponse:
        app = state.app
        if app is None:
            return web.json_response({"status": "not_ready", "reason": "no app assigned yet"}, status=503)
        return web.json_response({"status": "ready", "app": app.name, "version": app.version})

    async def metrics_text(_: web.BaseRequest) -> web.StreamResponse:
        response = web.Response(body=metrics.exposition())
        response.headers["content-type"] = metrics.content_type
        return response

    async def info(_: web.BaseRequest) -> web.StreamResponse:
        return web.json_response(node_info(node, state))

    return {"/healthz": healthz, "/readyz": readyz, "/metrics": metrics_text, "/_edge/info": info}


def node_info(node: NodeIdentity, state: NodeState) -> dict[str, Any]:
    app = state.app
    return {
        "node_id": node.node_id,
        "region": node.region,
        "pop": node.pop,
        "app": None if app is None else {"name": app.name, "version": app.version},
        "modules": [] if app is None else [module.describe() for module in app.modules.values()],
    }
