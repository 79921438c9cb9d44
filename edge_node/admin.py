"""Admin endpoints of an edge node: liveness, readiness, Prometheus metrics, node info, and
the region's IoT gateways (``/_edge/iot``, answered by edge_node.iot).

They share the data-plane port (the router's health checks and Prometheus scrape it),
so their paths are reserved: an app route at one of them is never reached.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_node.geo_headers import NodeIdentity
from edge_node.metrics import EdgeMetrics
from edge_node.state import NodeState

ADMIN_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/_edge/info", "/_edge/iot"})


@dataclass(frozen=True, slots=True)
class AdminAnswer:
    status: int
    content_type: str
    body: bytes

    @classmethod
    def json(cls, document: dict[str, Any], status: int = 200) -> AdminAnswer:
        return cls(status, "application/json", json.dumps(document).encode())


# Admin answers are computed from in-memory state: no I/O, so no awaiting.
AdminEndpoint = Callable[[], AdminAnswer]


def admin_endpoints(
    *,
    node: NodeIdentity,
    state: NodeState,
    metrics: EdgeMetrics,
    iot: AdminEndpoint,
    exposition: Callable[[], bytes] | None = None,
    worker: Mapping[str, Any] | None = None,
) -> Mapping[str, AdminEndpoint]:
    """Every admin path; ``iot`` answers ``/_edge/iot`` (edge_node.iot). A worker of
    ``--workers N`` passes its ``exposition`` (the node's metrics summed) and says which
    ``worker`` it is in ``/_edge/info``."""
    render = exposition or metrics.exposition

    def healthz() -> AdminAnswer:
        return AdminAnswer.json({"status": "ok", "node": node.node_id})

    def readyz() -> AdminAnswer:
        app = state.app
        if app is None:
            return AdminAnswer.json({"status": "not_ready", "reason": "no app assigned yet"}, status=503)
        return AdminAnswer.json({"status": "ready", "app": app.name, "version": app.version})

    def metrics_text() -> AdminAnswer:
        return AdminAnswer(200, metrics.content_type, render())

    def info() -> AdminAnswer:
        document = node_info(node, state)
        if worker is not None:
            document["worker"] = dict(worker)
        return AdminAnswer.json(document)

    return {
        "/healthz": healthz,
        "/readyz": readyz,
        "/metrics": metrics_text,
        "/_edge/info": info,
        "/_edge/iot": iot,
    }


def node_info(node: NodeIdentity, state: NodeState) -> dict[str, Any]:
    app = state.app
    return {
        "node_id": node.node_id,
        "region": node.region,
        "pop": node.pop,
        "app": None if app is None else {"name": app.name, "version": app.version},
        "modules": [] if app is None else [module.describe() for module in app.modules.values()],
    }
