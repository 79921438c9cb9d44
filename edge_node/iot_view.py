"""What an edge node knows of its region's IoT gateways, from their messages (pure: no I/O).

``RegionGateways`` takes parsed contract messages (docs/iot.md) in whatever order and as
often as the broker delivers them (QoS 1 means duplicates; a reconnect replays every
retained status) and keeps, per gateway, its presence, its latest module result and its
recent alerts. Everything it keeps is bounded: alerts per gateway and per region, and the
number of gateways, so a flood of messages costs memory that does not grow.

Order: a message older than what is already known does not replace it (a late status does
not bring a gateway back online; a late result does not hide a newer one); an alert seen
twice is kept once.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field
from typing import Any

from iotwire.payloads import Message, number, text

ALERTS_PER_GATEWAY = 20
ALERTS_PER_REGION = 50
MAX_GATEWAYS = 10_000

AlertKey = tuple[float, str, str, float]  # ts, gateway, sensor, value: one alert's identity


@dataclass(slots=True)
class GatewayState:
    """One gateway as last heard of (mutable, owned by ``RegionGateways``)."""

    gateway_id: str
    online: bool | None = None  # None until a status arrives
    offline_reason: str = ""
    module_sha256: str = ""
    status_ts: float | None = None
    last_seen: float | None = None
    result: dict[str, Any] | None = None
    result_ts: float | None = None
    batch: int | None = None
    readings_total: int = 0
    alerts_total: int = 0
    alerts_seen: int = 0
    # Sorted by key (oldest first); at most ALERTS_PER_GATEWAY.
    alerts: list[tuple[AlertKey, dict[str, Any]]] = field(default_factory=list)

    def describe(self) -> dict[str, Any]:
        return {
            "gateway_id": self.gateway_id,
            "online": self.online,
            "offline_reason": self.offline_reason or None,
            "module_sha256": self.module_sha256 or None,
            "last_seen": self.last_seen,
            "status_ts": self.status_ts,
            "result": self.result,
            "result_ts": self.result_ts,
            "batch": self.batch,
            "alerts": [alert for _, alert in reversed(self.alerts)],
            "alerts_total": self.alerts_total,
            "alerts_seen": self.alerts_seen,
            "readings_total": self.readings_total,
        }


def _keep_newest(
    alerts: list[tuple[AlertKey, dict[str, Any]]], key: AlertKey, alert: dict[str, Any], limit: int
) -> bool:
    """Insert ``alert`` in key order unless already there; drop the oldest past ``limit``.
    Whether it was new (an alert older than every kept one, with the list full, is not)."""
    index = bisect.bisect_left(alerts, key, key=lambda item: item[0])
    if index < len(alerts) and alerts[index][0] == key:
        return False
    if len(alerts) >= limit and index == 0:
        return False
    alerts.insert(index, (key, alert))
    del alerts[: max(0, len(alerts) - limit)]
    return True


class RegionGateways:
    """The gateways of one region, built from their status, results and alerts."""

    def __init__(self, region: str) -> None:
        self.region = region
        self._gateways: dict[str, GatewayState] = {}
        self._region_alerts: list[tuple[AlertKey, dict[str, Any]]] = []

    def __len__(self) -> int:
        return len(self._gateways)

    def gateway(self, gateway_id: str) -> GatewayState | None:
        return self._gateways.get(gateway_id)

    def apply(self, message: Message) -> str:
        """Take one message; '' when taken, else why not (a label to count by)."""
        if message.region != self.region:
            return "other_region"
        state = self._gateways.get(message.gateway_id)
        if state is None:
            if len(self._gateways) >= MAX_GATEWAYS:
                return "too_many_gateways"
            state = self._gateways[message.gateway_id] = GatewayState(gateway_id=message.gateway_id)
        ts = number(message.body, "ts")
        if ts is not None:
            state.last_seen = ts if state.last_seen is None else max(state.last_seen, ts)
        if message.kind == "status":
            _apply_status(state, message.body, ts)
        elif message.kind == "results":
            _apply_result(state, message.body, ts)
        elif message.kind == "alerts":
            self._apply_alert(state, message.body, ts)
        else:
            return "unexpected_kind"
        return ""

    def _apply_alert(self, state: GatewayState, body: dict[str, Any], ts: float | None) -> None:
        sensor, value = text(body, "sensor"), number(body, "value")
        alert = {
            "gateway_id": state.gateway_id,
            "ts": ts,
            "sensor": sensor,
            "value": value,
            "threshold": number(body, "threshold"),
            "message": text(body, "message"),
        }
        key: AlertKey = (ts or 0.0, state.gateway_id, sensor, value or 0.0)
        if _keep_newest(state.alerts, key, alert, ALERTS_PER_GATEWAY):
            state.alerts_seen += 1  # distinct alerts taken in (a redelivery is not counted)
        _keep_newest(self._region_alerts, key, alert, ALERTS_PER_REGION)

    def document(self) -> dict[str, Any]:
        """The region as JSON-ready data: gateways by id, region alerts newest first."""
        return {
            "gateways": [self._gateways[gid].describe() for gid in sorted(self._gateways)],
            "alerts": [alert for _, alert in reversed(self._region_alerts)],
        }


def _apply_status(state: GatewayState, body: dict[str, Any], ts: float | None) -> None:
    if ts is not None and state.status_ts is not None and ts < state.status_ts:
        return  # a late status: what we know is newer
    state.status_ts = ts if ts is not None else state.status_ts
    state.online = bool(body["online"])
    state.offline_reason = "" if state.online else (text(body, "reason") or "offline")
    state.module_sha256 = text(body, "module_sha256") or state.module_sha256
    for key in ("readings_total", "alerts_total"):
        value = number(body, key)
        if value is not None and value >= 0:
            setattr(state, key, int(value))


def _apply_result(state: GatewayState, body: dict[str, Any], ts: float | None) -> None:
    if ts is not None and state.result_ts is not None and ts < state.result_ts:
        return
    state.result = body["result"]
    state.result_ts = ts
    batch = number(body, "batch")
    state.batch = None if batch is None else int(batch)
    state.module_sha256 = text(body, "module_sha256") or state.module_sha256


def refusal_label(reason: str) -> str:
    """A stable metric label for a refusal reason of ``iotwire.payloads.parse_message``
    (whose reasons carry details such as sizes and ids: too many distinct values to count by)."""
    rules = (
        ("over 64 KiB", "too_large"),
        ("not UTF-8 JSON", "not_json"),
        ("not a JSON object", "not_object"),
        ("does not match the topic", "id_mismatch"),
        ("topic", "bad_topic"),
        ("ids must match", "bad_topic"),
        ("unexpected kind", "bad_topic"),
        ("need", "missing_field"),
    )
    for needle, label in rules:
        if needle in reason:
            return label
    return "other"
