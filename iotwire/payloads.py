"""Payloads of docs/iot.md: strict parsing (a refusal says why, never raises) and encoding.

Every payload is a UTF-8 JSON object of at most ``MAX_PAYLOAD`` bytes. Readers ignore
unknown keys; a key that names the gateway or region must agree with the topic.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from iotwire.topics import Kind, parse_topic

MAX_PAYLOAD = 64 * 1024
MIN_INTERVAL_S = 0.05
MAX_INTERVAL_S = 3600.0
_SHA256 = re.compile(r"[0-9a-f]{64}")
_COMMAND_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
CommandKind = Literal["update_module", "set_interval", "ping"]
COMMAND_KINDS: tuple[CommandKind, ...] = ("update_module", "set_interval", "ping")


def encode(body: dict[str, Any]) -> bytes:
    """Compact JSON, the form every publisher sends."""
    return json.dumps(body, separators=(",", ":"), allow_nan=False).encode("utf-8")


def decode_object(payload: bytes) -> dict[str, Any] | str:
    """The payload's JSON object, or why it is not one."""
    if len(payload) > MAX_PAYLOAD:
        return f"payload of {len(payload)} bytes is over 64 KiB"
    try:
        body = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as exc:
        return f"not UTF-8 JSON: {exc}"
    return body if isinstance(body, dict) else "payload is not a JSON object"


def number(body: dict[str, Any], key: str) -> float | None:
    """A finite number under ``key`` (booleans are not numbers), else None."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def text(body: dict[str, Any], key: str) -> str:
    value = body.get(key)
    return value if isinstance(value, str) else ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Refusal:
    """Why a message was not taken; ``reason`` is stable enough to count by."""

    topic: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Message:
    """A well-formed gateway message on ``edgecdn/v1/{region}/{gateway}/{kind}``."""

    region: str
    gateway_id: str
    kind: Kind
    body: dict[str, Any]


def parse_message(topic: str, payload: bytes) -> Message | Refusal:
    """Check the topic, the payload, the ids it names and the kind's required keys."""
    where = parse_topic(topic)
    if isinstance(where, str):
        return Refusal(topic=topic, reason=where)
    body = decode_object(payload)
    if isinstance(body, str):
        return Refusal(topic=topic, reason=body)
    for key, expected in (("gateway_id", where.gateway_id), ("region", where.region)):
        if key in body and body[key] != expected:
            return Refusal(topic=topic, reason=f"{key} {body[key]!r} does not match the topic")
    problem = _missing(where.kind, body)
    if problem:
        return Refusal(topic=topic, reason=problem)
    return Message(region=where.region, gateway_id=where.gateway_id, kind=where.kind, body=body)


def _missing(kind: Kind, body: dict[str, Any]) -> str:
    if kind == "status" and not isinstance(body.get("online"), bool):
        return "status needs a boolean 'online'"
    if kind == "results" and not isinstance(body.get("result"), dict):
        return "results need an object 'result'"
    if kind == "alerts" and (number(body, "value") is None or not text(body, "sensor")):
        return "alerts need a 'sensor' and a numeric 'value'"
    if kind == "telemetry" and not isinstance(body.get("readings"), list):
        return "telemetry needs a list 'readings'"
    return ""


@dataclass(frozen=True, slots=True, kw_only=True)
class Command:
    """A command for one gateway (the ``cmd`` payload)."""

    command_id: str
    kind: CommandKind
    sha256: str = ""
    interval_s: float = 0.0

    def to_payload(self, *, traceparent: str = "") -> bytes:
        body: dict[str, Any] = {"command_id": self.command_id, "kind": self.kind}
        if self.kind == "update_module":
            body["sha256"] = self.sha256
        elif self.kind == "set_interval":
            body["interval_s"] = self.interval_s
        if traceparent:
            body["traceparent"] = traceparent
        return encode(body)


@dataclass(frozen=True, slots=True, kw_only=True)
class BadCommand:
    """A command that cannot be carried out; ``command_id`` when one could be read."""

    command_id: str
    reason: str


def parse_command(payload: bytes) -> Command | BadCommand:
    body = decode_object(payload)
    if isinstance(body, str):
        return BadCommand(command_id="", reason=body)
    command_id = text(body, "command_id")
    if not _COMMAND_ID.fullmatch(command_id):
        return BadCommand(command_id="", reason="'command_id' must be 1-128 of [A-Za-z0-9._:-]")
    kind = body.get("kind")
    for known in COMMAND_KINDS:
        if kind == known:
            return _command_args(command_id, known, body)
    return BadCommand(
        command_id=command_id, reason=f"unknown command kind {kind!r}; known: {', '.join(COMMAND_KINDS)}"
    )


def _command_args(command_id: str, kind: CommandKind, body: dict[str, Any]) -> Command | BadCommand:
    if kind == "update_module":
        digest = text(body, "sha256")
        if not _SHA256.fullmatch(digest):
            return BadCommand(command_id=command_id, reason="'sha256' must be 64 lower-case hex digits")
        return Command(command_id=command_id, kind=kind, sha256=digest)
    if kind == "set_interval":
        interval = number(body, "interval_s")
        if interval is None or not MIN_INTERVAL_S <= interval <= MAX_INTERVAL_S:
            return BadCommand(
                command_id=command_id,
                reason=f"'interval_s' must be a number from {MIN_INTERVAL_S:g} to {MAX_INTERVAL_S:g}",
            )
        return Command(command_id=command_id, kind=kind, interval_s=interval)
    return Command(command_id=command_id, kind=kind)


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandResult:
    """The one answer to a command (the ``cmd/result`` payload)."""

    command_id: str
    gateway_id: str
    ok: bool
    message: str
    status: dict[str, Any]

    def to_payload(self) -> bytes:
        return encode(
            {
                "command_id": self.command_id,
                "gateway_id": self.gateway_id,
                "ok": self.ok,
                "message": self.message,
                "status": self.status,
            }
        )


def parse_command_result(payload: bytes) -> CommandResult | str:
    body = decode_object(payload)
    if isinstance(body, str):
        return body
    command_id, gateway_id = text(body, "command_id"), text(body, "gateway_id")
    if not command_id or not gateway_id or not isinstance(body.get("ok"), bool):
        return "a command result needs 'command_id', 'gateway_id' and a boolean 'ok'"
    status = body.get("status")
    return CommandResult(
        command_id=command_id,
        gateway_id=gateway_id,
        ok=bool(body["ok"]),
        message=text(body, "message"),
        status=status if isinstance(status, dict) else {},
    )
