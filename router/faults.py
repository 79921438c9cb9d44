"""WAN faults an operator injects per region (``edgecdn chaos wan``): pure decisions.

A :class:`WanFault` adds latency and packet loss to the emulated path between clients and
one region's PoP; a :class:`FaultTable` holds at most one per region. :func:`one_way_trip`
turns a fault into what one one-way trip of a request or answer experiences, and
:func:`fault_from_json` checks what an operator asked for. No I/O here: the clock (``now``,
monotonic seconds) and the random generator are arguments, so every decision is testable.
"""

from __future__ import annotations

import json
import math
import random
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from router.errors import FaultSpecError

MIN_RTO_MS = 200.0  # Linux's TCP_RTO_MIN
MAX_RTO_MS = 120_000.0  # Linux's TCP_RTO_MAX
MAX_RETRANSMISSIONS = 6
MAX_EXTRA_LATENCY_MS = 60_000.0
BODY_KEYS = ("latency_ms", "loss", "for_s", "rto_min_ms")
EXAMPLE_BODY = '{"latency_ms": 200, "loss": 0.05, "for_s": 60}'


@dataclass(frozen=True, slots=True, kw_only=True)
class WanFault:
    """Extra one-way latency and loss on the path to ``region``'s PoP, until ``expires_at``
    (monotonic seconds; None: until cleared). ``rto_min_ms`` is the path's minimum
    retransmission timeout, as Linux's ``ip route ... rto_min`` sets it."""

    fault_id: str
    region: str
    extra_latency_ms: float = 0.0
    loss: float = 0.0
    rto_min_ms: float = MIN_RTO_MS
    created_at: float
    expires_at: float | None = None
    created_by: str = ""

    def __post_init__(self) -> None:
        if not (math.isfinite(self.extra_latency_ms) and 0 <= self.extra_latency_ms <= MAX_EXTRA_LATENCY_MS):
            raise FaultSpecError(
                f"latency_ms must be within [0, {MAX_EXTRA_LATENCY_MS:g}] (extra one-way milliseconds), "
                f"got {self.extra_latency_ms!r}",
                field="latency_ms",
            )
        if not (math.isfinite(self.loss) and 0 <= self.loss < 1):
            raise FaultSpecError(
                f"loss must be a ratio within [0, 1) (0.05 is 5% of packets), got {self.loss!r}", field="loss"
            )
        if not (math.isfinite(self.rto_min_ms) and 1 <= self.rto_min_ms <= MIN_RTO_MS):
            raise FaultSpecError(
                f"rto_min_ms must be within [1, {MIN_RTO_MS:g}], got {self.rto_min_ms!r}", field="rto_min_ms"
            )
        if self.expires_at is not None and not self.expires_at > self.created_at:
            raise FaultSpecError("for_s must be a positive number of seconds", field="for_s")

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    def remaining_s(self, now: float) -> float | None:
        return None if self.expires_at is None else max(0.0, self.expires_at - now)

    def describe(self, now: float) -> dict[str, Any]:
        """As the admin endpoints show it (the request body's keys, plus what the router knows)."""
        remaining = self.remaining_s(now)
        return {
            "fault_id": self.fault_id,
            "region": self.region,
            "latency_ms": self.extra_latency_ms,
            "loss": self.loss,
            "rto_min_ms": self.rto_min_ms,
            "for_s": None if self.expires_at is None else round(self.expires_at - self.created_at, 3),
            "remaining_s": None if remaining is None else round(remaining, 3),
            "age_s": round(max(0.0, now - self.created_at), 3),
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class Trip:
    """What one one-way trip (a request or an answer) met on a faulted path."""

    extra_ms: float  # beyond the modeled delay: the fault's latency plus retransmission timeouts
    retransmissions: int
    lost: bool  # every transmission lost: the client's TCP gave up, the request fails


def one_way_trip(fault: WanFault, base_ms: float, rng: random.Random) -> Trip:
    """One one-way trip through ``fault``, over a path whose modeled delay is ``base_ms``.

    Loss is modeled as TCP experiences it, not as an HTTP error rate: each transmission is
    lost with probability ``fault.loss``; a lost one is sent again when its retransmission
    timeout fires. The RTO is Linux's for a steady path, the round trip (twice base plus
    extra latency) plus ``rto_min_ms`` (200 ms), doubling with each consecutive loss
    (exponential backoff). When the first transmission and all ``MAX_RETRANSMISSIONS`` (6)
    retransmissions are lost, the connection is given up (``lost``): the trip fails after
    waiting out every timeout. So at 5% loss about one trip in 20 pays 200+ ms, one in 400
    pays 600+ ms, and one in 1.3 billion fails: loss shows up as tail latency, rarely as
    failures; at 99.9% nearly every trip fails, after ~25 s of backoff (less with a lower
    ``rto_min_ms``). ``extra_ms`` is never below ``fault.extra_latency_ms``.
    """
    extra = fault.extra_latency_ms
    if fault.loss <= 0:
        return Trip(extra_ms=extra, retransmissions=0, lost=False)
    rto = min(2 * (max(0.0, base_ms) + extra) + fault.rto_min_ms, MAX_RTO_MS)
    waited = 0.0
    for sent in range(MAX_RETRANSMISSIONS + 1):
        if rng.random() >= fault.loss:
            return Trip(extra_ms=extra + waited, retransmissions=sent, lost=False)
        waited += rto
        rto = min(2 * rto, MAX_RTO_MS)
    return Trip(extra_ms=extra + waited, retransmissions=MAX_RETRANSMISSIONS, lost=True)


class FaultTable:
    """The active fault of each region. Setting a region's fault replaces the one before;
    expired faults are pruned whenever the table is read. ``empty`` is a plain attribute,
    so the proxy's fast path can ask it for the price of one attribute load."""

    __slots__ = ("_faults", "_issued", "_next_expiry", "empty")

    def __init__(self) -> None:
        self._faults: dict[str, WanFault] = {}
        self._issued = 0
        self._next_expiry = math.inf
        self.empty = True  # no fault held (an expired one not yet pruned counts as held)

    def __len__(self) -> int:
        return len(self._faults)

    def next_id(self) -> str:
        self._issued += 1
        return f"fault-{self._issued}"

    def put(self, fault: WanFault) -> WanFault | None:
        """Set ``fault`` on its region; the fault it replaces, if any."""
        replaced = self._faults.get(fault.region)
        self._faults[fault.region] = fault
        self._changed()
        return replaced

    def get(self, region: str, now: float) -> WanFault | None:
        """The fault active on ``region`` at ``now``."""
        if now >= self._next_expiry:
            self.prune(now)
        return self._faults.get(region)

    def active(self, now: float) -> list[WanFault]:
        """Every active fault, by region."""
        self.prune(now)
        return [self._faults[region] for region in sorted(self._faults)]

    def clear(self, region: str | None = None) -> list[WanFault]:
        """Heal ``region`` (every region when None); the faults removed."""
        if region is None:
            healed = [self._faults[name] for name in sorted(self._faults)]
            self._faults.clear()
        else:
            fault = self._faults.pop(region, None)
            healed = [] if fault is None else [fault]
        self._changed()
        return healed

    def prune(self, now: float) -> list[WanFault]:
        """Remove the faults expired at ``now``; those removed."""
        expired = [fault for fault in self._faults.values() if fault.expired(now)]
        for fault in expired:
            del self._faults[fault.region]
        self._changed()
        return expired

    def _changed(self) -> None:
        self.empty = not self._faults
        expiries = [fault.expires_at for fault in self._faults.values() if fault.expires_at is not None]
        self._next_expiry = min(expiries, default=math.inf)


def fault_from_json(
    body: bytes,
    *,
    region: str,
    known_regions: Collection[str],
    fault_id: str,
    now: float,
    created_by: str = "",
) -> WanFault:
    """The fault a ``PUT /_router/faults/REGION`` body asks for, or FaultSpecError saying
    exactly what is wrong. Body: ``{"latency_ms": ms, "loss": ratio, "for_s": s}``, each
    optional (``for_s`` absent: until cleared), plus ``rto_min_ms``."""
    check_region(region, known_regions)
    try:
        document = json.loads(body) if body.strip() else None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise FaultSpecError(
            f"the body is not JSON ({exc}); expected e.g. {EXAMPLE_BODY}", field="body"
        ) from exc
    if not isinstance(document, dict):
        raise FaultSpecError(f"the body must be a JSON object like {EXAMPLE_BODY}", field="body")
    unknown = sorted(set(document) - set(BODY_KEYS))
    if unknown:
        raise FaultSpecError(
            f"unknown field {unknown[0]!r}: a fault has {', '.join(BODY_KEYS)}", field=str(unknown[0])
        )
    latency = _number(document, "latency_ms")
    loss = _number(document, "loss")
    rto_min = _number(document, "rto_min_ms")
    for_s = _number(document, "for_s")
    if for_s is not None and not (math.isfinite(for_s) and for_s > 0):
        raise FaultSpecError(f"for_s must be a positive number of seconds, got {for_s!r}", field="for_s")
    fault = WanFault(
        fault_id=fault_id,
        region=region,
        extra_latency_ms=latency or 0.0,
        loss=loss or 0.0,
        rto_min_ms=MIN_RTO_MS if rto_min is None else rto_min,
        created_at=now,
        expires_at=None if for_s is None else now + for_s,
        created_by=created_by,
    )
    if not (fault.extra_latency_ms or fault.loss):
        raise FaultSpecError(
            f"this fault would change nothing: give latency_ms > 0 or loss > 0 (to heal {region}, "
            f"DELETE /_router/faults/{region})",
            field="body",
        )
    return fault


def check_region(region: str, known_regions: Collection[str]) -> None:
    """FaultSpecError naming the world's regions, unless ``region`` is one of them."""
    if region not in known_regions:
        raise FaultSpecError(
            f"unknown region {region!r}: the world's regions are {', '.join(sorted(known_regions))}",
            field="region",
        )


def _number(document: Mapping[str, Any], key: str) -> float | None:
    """``document[key]`` as a float; None when absent or null."""
    value = document.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise FaultSpecError(f"{key} must be a number, got {json.dumps(value)}", field=key)
    return float(value)
