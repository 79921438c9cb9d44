"""The admin HTTP API (aiohttp): list the links, set and heal faults.

Every request but ``GET /healthz`` needs ``Authorization: Bearer TOKEN``. Errors are JSON
``{"error": kind, "message": ...}`` with the status their class carries.
"""

from __future__ import annotations

import hmac
from contextlib import AsyncExitStack
from typing import Any

from aiohttp import web
from aiohttp.typedefs import Handler

from faultrelay.config import host_port
from faultrelay.controller import FaultController
from faultrelay.errors import FaultRelayError, ListenError, UnauthorizedError
from faultrelay.faults import Fault, parse_fault_request
from faultrelay.relay import LinkRelay

MAX_BODY_BYTES = 64 * 1024
SHUTDOWN_TIMEOUT_S = 1.0
OPEN_PATHS = frozenset({"/healthz"})


def admin_app(controller: FaultController, token: str) -> web.Application:
    api = _AdminApi(controller)
    app = web.Application(middlewares=[_guard(token)], client_max_size=MAX_BODY_BYTES)
    app.router.add_get("/healthz", api.healthz)
    app.router.add_get("/links", api.links)
    app.router.add_put("/links/{name}/fault", api.set_fault)
    app.router.add_delete("/links/{name}/fault", api.heal)
    app.router.add_delete("/faults", api.heal_all)
    return app


async def start_admin(stack: AsyncExitStack, app: web.Application, host: str, port: int) -> str:
    """Serve ``app`` on ``host:port`` until ``stack`` closes; return its URL."""
    runner = web.AppRunner(app, access_log=None, shutdown_timeout=SHUTDOWN_TIMEOUT_S)
    await runner.setup()
    stack.push_async_callback(runner.cleanup)
    try:
        await web.TCPSite(runner, host, port, reuse_address=True).start()
    except OSError as exc:
        raise ListenError(what="admin API", host=host, port=port, exc=exc) from exc
    bound_host, bound_port = runner.addresses[0][:2]
    return f"http://{host_port(bound_host, bound_port)}"


def _guard(token: str) -> Any:
    expected = f"Bearer {token}".encode()

    @web.middleware
    async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
        try:
            if request.path not in OPEN_PATHS:
                given = request.headers.get("Authorization", "").encode("utf-8", "surrogateescape")
                if not hmac.compare_digest(given, expected):
                    raise UnauthorizedError("this API needs the header Authorization: Bearer TOKEN")
            return await handler(request)
        except FaultRelayError as exc:
            headers = {"WWW-Authenticate": "Bearer"} if isinstance(exc, UnauthorizedError) else None
            return web.json_response(exc.to_json(), status=exc.status, headers=headers)

    return guard


class _AdminApi:
    def __init__(self, controller: FaultController) -> None:
        self._controller = controller

    async def healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    async def links(self, _request: web.Request) -> web.Response:
        self._controller.expire_due()
        return web.json_response([self._link_view(relay) for relay in self._controller.relays.values()])

    async def set_fault(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        self._controller.book.check_link(name)  # an unknown link is a 404 whatever the body
        fault_request = parse_fault_request(await request.read())
        self._controller.set_fault(name, fault_request)
        return web.json_response(self._link_view(self._controller.relays[name]))

    async def heal(self, request: web.Request) -> web.Response:
        name = request.match_info["name"]
        healed = self._controller.heal(name)
        return web.json_response(
            {"link": name, "healed": None if healed is None else self._fault_view(healed)}
        )

    async def heal_all(self, _request: web.Request) -> web.Response:
        healed = self._controller.heal_all()
        return web.json_response(
            {"healed": [{"link": fault.link, **self._fault_view(fault)} for fault in healed]}
        )

    def _link_view(self, relay: LinkRelay) -> dict[str, Any]:
        counters = relay.counters
        fault = self._controller.book.active(relay.spec.name, self._controller.clock.monotonic())
        return {
            "name": relay.spec.name,
            "listen": relay.address,
            "upstream": relay.spec.upstream,
            "active_connections": len(relay.pipes),
            "connections_total": counters.connections_total,
            "connections_reset": counters.connections_reset,
            "upstream_failures": counters.upstream_failures,
            "bytes_to_upstream": counters.bytes_to_upstream,
            "bytes_to_client": counters.bytes_to_client,
            "fault": None if fault is None else self._fault_view(fault),
        }

    def _fault_view(self, fault: Fault) -> dict[str, Any]:
        clock = self._controller.clock
        now, wall = clock.monotonic(), clock.wall()
        remaining = fault.remaining_s(now)
        return {
            "kind": fault.kind,
            "reason": fault.reason,
            "for_s": None if fault.expires_at is None else round(fault.expires_at - fault.set_at, 6),
            "remaining_s": None if remaining is None else round(remaining, 3),
            "set_at": round(wall + (fault.set_at - now), 3),
            "expires_at": None if fault.expires_at is None else round(wall + (fault.expires_at - now), 3),
        }
