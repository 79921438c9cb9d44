"""The gateway registry: what the control plane knows of every gateway, built from the
contract's messages (docs/iot.md), and the liveness rule.

Pure: no I/O and no clock of its own (callers pass ``now``). Parsing is
``iotwire.payloads.parse_message``; malformed messages are refused with a reason and counted
by reason, never raised. A gateway is online while its retained status says so and a status
arrived within ``missed_allowed`` status periods (``sweep``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from iotwire.payloads import Message, Refusal, number, parse_message, text
from iotwire.topics import parse_topic

STATUS_PERIOD_S = 10.0  # a gateway publishes its status this often (docs/iot.md)
MISSED_STATUSES = 3
MAX_REASONS = 64  # distinct refusal reasons counted; the rest count as "other"
_QUOTED = re.compile(r"'[^']*'|\"[^\"]*\"")
_NUMBER = re.compile(r"(?<![\w-])\d+(?:\.\d+)?(?![\w-])")  # "70000 bytes", not "UTF-8"

__all__ = ["Gateway", "Message", "Refusal", "RegionHealth", "Registry", "reason_key"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway:
    """One gateway as its last messages describe it. Times are the control plane's clock
    (``last_seen``, ``offline_since``) except ``last_status_ts``, the gateway's own."""

    gateway_id: str
    region: str
    online: bool = False
    offline_reason: str = ""
    offline_since: float = 0.0
    module_sha256: str = ""
    module_name: str = ""
    sensors: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    interval_s: float = 0.0
    last_status_ts: float = 0.0
    last_seen: float = 0.0
    readings_total: int = 0
    alerts_total: int = 0
    module_errors_total: int = 0
    rollbacks_total: int = 0
    last_error: str = ""
    results_received: int = 0
    alerts_received: int = 0
    status: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class RegionHealth:
    """A region's gateways in figures, for the rollout engine's gates on gateway modules."""

    region: str
    gateways: int
    online: int
    module_errors_total: int
    rollbacks_total: int
    readings_total: int
    alerts_total: int
    results_received: int
    modules: Mapping[str, int]  # module digest -> gateways running it ("" when none)


def reason_key(kind: str, reason: str) -> str:
    """A refusal reason without its particulars (values, sizes), so counts stay few."""
    general = _NUMBER.sub("N", _QUOTED.sub("...", reason.split(": ", 1)[0]))
    return f"{kind}: {general}"


def _count(body: Mapping[str, Any], key: str) -> int:
    value = number(dict(body), key)
    return int(value) if value is not None and value >= 0 else 0


def _labels(body: Mapping[str, Any]) -> dict[str, str]:
    labels = body.get("labels")
    if not isinstance(labels, dict):
        return {}
    return {k: v for k, v in labels.items() if isinstance(k, str) and isinstance(v, str)}


def _sensors(body: Mapping[str, Any]) -> tuple[str, ...]:
    sensors = body.get("sensors")
    return tuple(s for s in sensors if isinstance(s, str)) if isinstance(sensors, list) else ()


class Registry:
    """Gateways by id; refusals counted by reason."""

    def __init__(
        self, *, status_period_s: float = STATUS_PERIOD_S, missed_allowed: int = MISSED_STATUSES
    ) -> None:
        self._gateways: dict[str, Gateway] = {}
        self._refused: dict[str, int] = {}
        self.silence_limit_s = status_period_s * missed_allowed

    @property
    def refused(self) -> int:
        return sum(self._refused.values())

    def refused_by_reason(self) -> dict[str, int]:
        return dict(self._refused)

    def refuse(self, kind: str, reason: str) -> str:
        """Count a refusal (also of messages parsed elsewhere, e.g. command results); its key."""
        key = reason_key(kind, reason)
        if key not in self._refused and len(self._refused) >= MAX_REASONS:
            key = "other"
        self._refused[key] = self._refused.get(key, 0) + 1
        return key

    def apply(self, topic: str, payload: bytes, now: float) -> Message | Refusal:
        """Take a status, results or alerts message received at ``now``."""
        parsed = parse_message(topic, payload)
        if isinstance(parsed, Message) and parsed.kind not in ("status", "results", "alerts"):
            parsed = Refusal(topic=topic, reason=f"unexpected kind {parsed.kind!r}")
        if isinstance(parsed, Refusal):
            where = parse_topic(topic)
            self.refuse("topic" if isinstance(where, str) else where.kind, parsed.reason)
            return parsed
        current = self._gateways.get(parsed.gateway_id) or Gateway(
            gateway_id=parsed.gateway_id, region=parsed.region
        )
        self._gateways[parsed.gateway_id] = _update(current, parsed, now)
        return parsed

    def sweep(self, now: float) -> list[Gateway]:
        """Mark offline every online gateway silent for longer than the limit; those gateways."""
        silent = [g for g in self._gateways.values() if g.online and now - g.last_seen > self.silence_limit_s]
        for gateway in silent:
            self._gateways[gateway.gateway_id] = replace(
                gateway,
                online=False,
                offline_reason=f"no status for {self.silence_limit_s:g}s",
                offline_since=gateway.last_seen,
            )
        return [self._gateways[g.gateway_id] for g in silent]

    def get(self, gateway_id: str) -> Gateway | None:
        return self._gateways.get(gateway_id)

    def gateways(self, regions: Iterable[str] = ()) -> list[Gateway]:
        """Sorted by region then id; only ``regions`` when given."""
        wanted = set(regions)
        chosen = (g for g in self._gateways.values() if not wanted or g.region in wanted)
        return sorted(chosen, key=lambda g: (g.region, g.gateway_id))

    def region_health(self) -> dict[str, RegionHealth]:
        by_region: dict[str, list[Gateway]] = {}
        for gateway in self._gateways.values():
            by_region.setdefault(gateway.region, []).append(gateway)
        return {region: _health(region, members) for region, members in sorted(by_region.items())}


def _health(region: str, members: list[Gateway]) -> RegionHealth:
    modules: dict[str, int] = {}
    for gateway in members:
        modules[gateway.module_sha256] = modules.get(gateway.module_sha256, 0) + 1
    return RegionHealth(
        region=region,
        gateways=len(members),
        online=sum(g.online for g in members),
        module_errors_total=sum(g.module_errors_total for g in members),
        rollbacks_total=sum(g.rollbacks_total for g in members),
        readings_total=sum(g.readings_total for g in members),
        alerts_total=sum(g.alerts_total for g in members),
        results_received=sum(g.results_received for g in members),
        modules=modules,
    )


def _update(gateway: Gateway, message: Message, now: float) -> Gateway:
    body = message.body
    if message.kind == "results":
        return replace(gateway, results_received=gateway.results_received + 1)
    if message.kind == "alerts":
        return replace(gateway, alerts_received=gateway.alerts_received + 1)
    if not body["online"]:
        # The last will or a graceful stop: keep what we knew of its module and figures.
        since = gateway.offline_since if not gateway.online and gateway.offline_since else now
        return replace(
            gateway, online=False, offline_reason=text(body, "reason") or "offline", offline_since=since
        )
    return replace(
        gateway,
        region=message.region,
        online=True,
        offline_reason="",
        offline_since=0.0,
        module_sha256=text(body, "module_sha256"),
        module_name=text(body, "module_name"),
        sensors=_sensors(body),
        labels=_labels(body),
        interval_s=number(body, "interval_s") or 0.0,
        last_status_ts=number(body, "ts") or 0.0,
        last_seen=now,
        readings_total=_count(body, "readings_total"),
        alerts_total=_count(body, "alerts_total"),
        module_errors_total=_count(body, "module_errors_total"),
        rollbacks_total=_count(body, "rollbacks_total"),
        last_error=text(body, "last_error"),
        status=body,
    )
