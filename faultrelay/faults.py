"""The relay's decisions, without I/O: which link is faulted at time ``now``, and what a
fault request asks for.

``FaultBook`` holds at most one fault per link. Times are monotonic seconds supplied by
the caller (never read here), so tests drive the clock and a fault's expiry is a plain
comparison: a fault is in force while ``now < expires_at``, never after. Expired faults
stay in the book until ``expire(now)`` removes them, so the caller can log and persist
each expiry once; ``active()`` ignores them meanwhile.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from faultrelay.errors import BadFaultRequestError, UnknownLinkError

FaultKind = Literal["partition"]
"""What a fault does to a link. More kinds (latency, bandwidth) slot in here and in the relay."""
FAULT_KINDS: tuple[str, ...] = get_args(FaultKind)
MAX_REASON_CHARS = 200
_REQUEST_FIELDS = ("kind", "for_s", "reason")


@dataclass(frozen=True, slots=True, kw_only=True)
class FaultRequest:
    """A validated admin request: the fault's kind, how long (None: until healed), and why."""

    kind: FaultKind
    for_s: float | None = None
    reason: str = ""

    def __post_init__(self) -> None:
        if self.for_s is not None and not (math.isfinite(self.for_s) and self.for_s > 0):
            raise ValueError(f"for_s must be a positive finite number, not {self.for_s!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Fault:
    """A fault in force on one link from ``set_at`` until ``expires_at`` (monotonic seconds)."""

    link: str
    kind: FaultKind
    set_at: float
    expires_at: float | None  # None: until healed
    reason: str = ""

    @classmethod
    def starting(cls, link: str, request: FaultRequest, now: float) -> Fault:
        expires_at = None if request.for_s is None else now + request.for_s
        return cls(link=link, kind=request.kind, set_at=now, expires_at=expires_at, reason=request.reason)

    def in_force(self, now: float) -> bool:
        return self.expires_at is None or now < self.expires_at

    def remaining_s(self, now: float) -> float | None:
        """Seconds left at ``now`` (0 once expired), or None for a fault that lasts until healed."""
        return None if self.expires_at is None else max(self.expires_at - now, 0.0)


class FaultBook:
    """At most one fault per link; setting a fault replaces the link's previous one."""

    def __init__(self, links: Iterable[str]) -> None:
        self._links = frozenset(links)
        self._faults: dict[str, Fault] = {}

    @property
    def links(self) -> frozenset[str]:
        return self._links

    def check_link(self, link: str) -> None:
        if link not in self._links:
            raise UnknownLinkError(link=link, known=self._links)

    def set(self, fault: Fault) -> Fault | None:
        """Put ``fault`` in force on its link; return the fault it replaced (if any)."""
        self.check_link(fault.link)
        replaced = self._faults.get(fault.link)
        self._faults[fault.link] = fault
        return replaced

    def heal(self, link: str) -> Fault | None:
        """Remove ``link``'s fault; return it (None if the link had none)."""
        self.check_link(link)
        return self._faults.pop(link, None)

    def heal_all(self) -> list[Fault]:
        healed = sorted(self._faults.values(), key=lambda fault: fault.link)
        self._faults.clear()
        return healed

    def active(self, link: str, now: float) -> Fault | None:
        """The fault in force on ``link`` at ``now`` (an expired one never is)."""
        fault = self._faults.get(link)
        return fault if fault is not None and fault.in_force(now) else None

    def cuts(self, link: str, now: float) -> bool:
        """Whether ``link`` is partitioned at ``now``."""
        fault = self.active(link, now)
        return fault is not None and fault.kind == "partition"

    def expire(self, now: float) -> list[Fault]:
        """Remove and return every fault no longer in force at ``now``."""
        expired = [fault for fault in self._faults.values() if not fault.in_force(now)]
        for fault in expired:
            del self._faults[fault.link]
        return sorted(expired, key=lambda fault: fault.link)

    def next_expiry(self) -> float | None:
        """The earliest ``expires_at`` of the faults held, or None when none expires."""
        return min((f.expires_at for f in self._faults.values() if f.expires_at is not None), default=None)

    def faults(self) -> Mapping[str, Fault]:
        """Every fault held (expired ones included until ``expire`` runs), by link."""
        return dict(self._faults)


def parse_fault_request(body: bytes) -> FaultRequest:
    """Validate an admin ``PUT /links/NAME/fault`` body; BadFaultRequestError says what is wrong."""
    try:
        data = json.loads(body, parse_constant=_reject_constant)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise BadFaultRequestError(f"body is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise BadFaultRequestError(f"body must be a JSON object, not {type(data).__name__}")
    unknown = sorted(set(data) - set(_REQUEST_FIELDS))
    if unknown:
        raise BadFaultRequestError(
            f"unknown field(s) {', '.join(map(repr, unknown))}; fields are {', '.join(_REQUEST_FIELDS)}"
        )
    kind = data.get("kind")
    if kind not in FAULT_KINDS:
        raise BadFaultRequestError(f"kind must be one of {', '.join(FAULT_KINDS)} (got {kind!r})")
    for_s = data.get("for_s")
    if for_s is not None and (isinstance(for_s, bool) or not isinstance(for_s, int | float)):
        raise BadFaultRequestError(f"for_s must be a number of seconds (got {for_s!r})")
    if for_s is not None and not (math.isfinite(for_s) and for_s > 0):
        raise BadFaultRequestError(f"for_s must be a positive number of seconds (got {for_s!r})")
    reason = data.get("reason", "")
    if not isinstance(reason, str) or len(reason) > MAX_REASON_CHARS:
        raise BadFaultRequestError(f"reason must be a string of at most {MAX_REASON_CHARS} characters")
    return FaultRequest(kind=kind, for_s=None if for_s is None else float(for_s), reason=reason)


def _reject_constant(name: str) -> float:
    # Python's json accepts NaN and Infinity, which are not JSON; name them in the error.
    raise BadFaultRequestError(
        f"body is not valid JSON: {name} is not a JSON value (for_s must be a positive number of seconds)"
    )
