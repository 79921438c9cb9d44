"""The WAN fault overlay's admin endpoints, for an operator's chaos tool (``edgecdn chaos wan``).

    GET    /_router/faults           the active faults, with the seconds each has left
    PUT    /_router/faults/REGION    {"latency_ms": 200, "loss": 0.05, "for_s": 60}: set (replace)
    DELETE /_router/faults/REGION    heal one region
    DELETE /_router/faults           heal every region

Each needs ``Authorization: Bearer TOKEN`` with the router's ``--admin-token``; without
one configured, fault injection is off (403), so a router nobody armed cannot be slowed
down by whoever reaches its port.
"""

from __future__ import annotations

import dataclasses
import hmac
import logging
from collections.abc import Callable, Collection
from dataclasses import dataclass

from router.admin_http import AdminAnswer, AdminCall, AdminEndpoint, AdminMethods
from router.errors import FaultSpecError
from router.faults import FaultTable, WanFault, check_region, fault_from_json

logger = logging.getLogger(__name__)

REGION_PREFIX = "/_router/faults/"
DISABLED = "fault injection is disabled: start the router with --admin-token"
CHALLENGE = [(b"www-authenticate", b'Bearer realm="edge-router"')]


@dataclass(frozen=True, slots=True)
class FaultRoutes:
    table: AdminMethods  # /_router/faults
    region: AdminMethods  # /_router/faults/REGION


def fault_routes(
    faults: FaultTable, *, regions: Collection[str], admin_token: str, clock: Callable[[], float]
) -> FaultRoutes:
    known = frozenset(regions)

    def guarded(endpoint: AdminEndpoint) -> AdminEndpoint:
        def checked(call: AdminCall) -> AdminAnswer:
            refusal = refuse(call.authorization, admin_token)
            return endpoint(call) if refusal is None else refusal

        return checked

    def listing(_: AdminCall) -> AdminAnswer:
        now = clock()
        return AdminAnswer.json({"faults": [fault.describe(now) for fault in faults.active(now)]})

    def put(call: AdminCall) -> AdminAnswer:
        region = call.path.removeprefix(REGION_PREFIX)
        now = clock()
        try:
            fault = fault_from_json(
                call.body, region=region, known_regions=known, fault_id="", now=now, created_by=call.peer
            )
        except FaultSpecError as exc:
            return AdminAnswer.json(exc.to_json(), exc.status)
        fault = dataclasses.replace(fault, fault_id=faults.next_id())  # ids only for faults set
        replaced = faults.put(fault)
        logger.warning("WAN fault set by %s: %s", call.peer, _summary(fault))
        return AdminAnswer.json(
            {"fault": fault.describe(now), "replaced": None if replaced is None else replaced.describe(now)}
        )

    def heal(call: AdminCall) -> AdminAnswer:
        region = call.path.removeprefix(REGION_PREFIX)
        try:
            check_region(region, known)
        except FaultSpecError as exc:
            return AdminAnswer.json(exc.to_json(), exc.status)
        return _healed(faults.clear(region), call.peer, clock())

    def heal_all(call: AdminCall) -> AdminAnswer:
        return _healed(faults.clear(), call.peer, clock())

    return FaultRoutes(
        table={"GET": guarded(listing), "DELETE": guarded(heal_all)},
        region={"PUT": guarded(put), "DELETE": guarded(heal)},
    )


def refuse(authorization: str | None, admin_token: str) -> AdminAnswer | None:
    """Why the caller may not touch faults (403 disabled, 401 credentials), or None."""
    if not admin_token:
        return AdminAnswer.error(403, "forbidden", DISABLED)
    if authorization is None:
        return AdminAnswer.error(
            401, "unauthorized", "missing credentials: send 'Authorization: Bearer TOKEN'", CHALLENGE
        )
    scheme, _, given = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return AdminAnswer.error(
            401, "unauthorized", "malformed authorization: expected 'Bearer TOKEN'", CHALLENGE
        )
    # Constant time: the comparison must not tell a prober how much of a guess was right.
    if not hmac.compare_digest(given.strip().encode(), admin_token.encode()):
        return AdminAnswer.error(401, "unauthorized", "wrong admin token", CHALLENGE)
    return None


def _healed(healed: list[WanFault], peer: str, now: float) -> AdminAnswer:
    for fault in healed:
        logger.warning("WAN fault healed by %s: %s", peer, _summary(fault))
    return AdminAnswer.json({"healed": [fault.describe(now) for fault in healed]})


def _summary(fault: WanFault) -> str:
    lasting = "until cleared" if fault.expires_at is None else f"for {fault.expires_at - fault.created_at:g}s"
    return (
        f"{fault.fault_id} on {fault.region}: +{fault.extra_latency_ms:g} ms each way, "
        f"{fault.loss:.1%} loss, {lasting}"
    )
