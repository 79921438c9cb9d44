"""The control plane's ``/metrics`` port: Prometheus text over plain HTTP/1.1.

gRPC serves everything else; Prometheus scrapes HTTP, so the figures get a port of their
own (``--metrics-port``), served by ``httpfront`` as the router's and the edge node's admin
endpoints are. Two paths: ``/metrics`` and ``/healthz``; GET or HEAD only. An answer is
computed from memory on the event loop, so it is written whole, never streamed.
"""

from __future__ import annotations

import json

from control_plane.exclusive import ListenError
from control_plane.metrics import ControlPlaneMetrics
from httpfront.messages import FrontRequest, ResponseWriter
from httpfront.server import FrontendServer

JSON = b"application/json"
PATHS = ("/metrics", "/healthz")


def _error(status: int, kind: str, message: str) -> tuple[int, bytes, bytes]:
    return status, JSON, json.dumps({"error": kind, "message": message}).encode()


def answer(metrics: ControlPlaneMetrics, method: str, path: str) -> tuple[int, bytes, bytes]:
    """Status, content type and body for ``method path`` (pure but for the figures read)."""
    if path not in PATHS:
        return _error(404, "not_found", f"{path} is not served here: use {' or '.join(PATHS)}")
    if method not in {"GET", "HEAD"}:
        return _error(405, "method_not_allowed", f"{method} is not allowed on {path}: use GET or HEAD")
    if path == "/healthz":
        return 200, JSON, b'{"status": "ok"}'
    return 200, metrics.content_type.encode(), metrics.exposition()


class MetricsServer:
    """``start`` binds and serves; ``close`` stops (in-flight scrapes get ``grace_s``)."""

    def __init__(self, metrics: ControlPlaneMetrics) -> None:
        self._metrics = metrics
        self._server = FrontendServer(self._handle)
        self.url = ""

    async def _handle(self, request: FrontRequest, writer: ResponseWriter) -> None:
        status, content_type, body = answer(self._metrics, request.method, request.path)
        headers = [(b"content-type", content_type)]
        if status == 405:
            headers.append((b"allow", b"GET, HEAD"))
        await writer.respond(status, headers, body)

    async def start(self, host: str, port: int) -> str:
        """Listen on ``host:port`` (0: any free port); the base URL (``http://host:port``)."""
        try:
            bound_host, bound_port = await self._server.start(host, port)
        except OSError as exc:
            target = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
            raise ListenError(target=target, reason=f"--metrics-port: {exc.strerror or exc}") from exc
        shown = f"[{bound_host}]" if ":" in bound_host else bound_host
        self.url = f"http://{shown}:{bound_port}"
        return self.url

    async def close(self, grace_s: float = 1.0) -> None:
        await self._server.close(grace_s)
