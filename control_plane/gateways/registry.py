"""The gateway registry: pure parsing of the contract's messages and the state they build.

No I/O here: the MQTT adapter hands each (topic, payload) to ``Registry.apply``; malformed
messages are refused with a reason and counted, never raised.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field, replace
from typing import Any, Literal

MAX_PAYLOAD = 64 * 1024
_ID = re.compile(r"[a-z0-9-]{1,63}")
Kind = Literal["status", "results", "alerts"]
KINDS: tuple[Kind, ...] = ("status", "results", "alerts")


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Why a message was not applied."""

    topic: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A well-formed message on ``edgecdn/v1/{region}/{gateway}/{kind}``."""

    region: str
    gateway_id: str
    kind: Kind
    body: dict[str, Any]


@dataclass(frozen=True, slots=True, kw_only=True)
class Gateway:
    """What the control plane knows of one gateway."""

    gateway_id: str
    region: str
    online: bool = False
    module_sha256: str = ""
    module_name: str = ""
    interval_s: float = 0.0
    last_status_ts: float = 0.0
    offline_reason: str = ""
    readings_seen: int = 0
    results_seen: int = 0
    alerts_seen: int = 0
    status: dict[str, Any] = field(default_factory=dict)


def _text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


def _number(body: dict[str, Any], key: str) -> float:
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return 0.0
    return float(value)


def _topic(topic: str) -> tuple[str, str, Kind] | Refusal:
    parts = topic.split("/")
    if len(parts) != 5 or parts[:2] != ["edgecdn", "v1"]:
        return Refusal(topic=topic, reason="not an edgecdn/v1/{region}/{gateway}/{kind} topic")
    region, gateway_id, kind = parts[2], parts[3], parts[4]
    if not (_ID.fullmatch(region) and _ID.fullmatch(gateway_id)):
        return Refusal(topic=topic, reason="region and gateway ids must match [a-z0-9-]{1,63}")
    for known in KINDS:
        if kind == known:
            return region, gateway_id, known
    return Refusal(topic=topic, reason=f"unexpected kind {kind!r}")


def _body(payload: bytes) -> dict[str, Any] | str:
    if len(payload) > MAX_PAYLOAD:
        return f"payload of {len(payload)} bytes is over 64 KiB"
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not UTF-8 JSON: {exc}"
    return body if isinstance(body, dict) else "payload is not a JSON object"


def parse(topic: str, payload: bytes) -> Message | Refusal:
    """Check the topic shape and the payload (a JSON object naming the same gateway)."""
    where = _topic(topic)
    if isinstance(where, Refusal):
        return where
    region, gateway_id, kind = where
    body = _body(payload)
    if isinstance(body, str):
        return Refusal(topic=topic, reason=body)
    for key, expected in (("gateway_id", gateway_id), ("region", region)):
        if key in body and body[key] != expected:
            return Refusal(topic=topic, reason=f"{key} {body[key]!r} does not match the topic")
    if kind == "status" and not isinstance(body.get("online"), bool):
        return Refusal(topic=topic, reason="status needs a boolean 'online'")
    return Message(region=region, gateway_id=gateway_id, kind=kind, body=body)


class Registry:
    """Gateways by id, built from status/results/alerts messages."""

    def __init__(self) -> None:
        self._gateways: dict[str, Gateway] = {}
        self.refused = 0
        self.last_refusal: Refusal | None = None

    def apply(self, topic: str, payload: bytes) -> Message | Refusal:
        parsed = parse(topic, payload)
        if isinstance(parsed, Refusal):
            self.refused += 1
            self.last_refusal = parsed
            return parsed
        current = self._gateways.get(parsed.gateway_id) or Gateway(
            gateway_id=parsed.gateway_id, region=parsed.region
        )
        self._gateways[parsed.gateway_id] = _update(current, parsed)
        return parsed

    def get(self, gateway_id: str) -> Gateway | None:
        return self._gateways.get(gateway_id)

    def gateways(self) -> list[Gateway]:
        return sorted(self._gateways.values(), key=lambda g: (g.region, g.gateway_id))


def _update(gateway: Gateway, message: Message) -> Gateway:
    body = message.body
    if message.kind == "results":
        return replace(gateway, results_seen=gateway.results_seen + 1)
    if message.kind == "alerts":
        return replace(gateway, alerts_seen=gateway.alerts_seen + 1)
    if not body["online"]:
        return replace(gateway, online=False, offline_reason=_text(body, "reason"))
    return replace(
        gateway,
        region=message.region,
        online=True,
        offline_reason="",
        module_sha256=_text(body, "module_sha256"),
        module_name=_text(body, "module_name"),
        interval_s=_number(body, "interval_s"),
        last_status_ts=_number(body, "ts"),
        readings_seen=int(_number(body, "readings_total")),
        status=body,
    )
