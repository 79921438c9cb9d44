"""Topic names: ``edgecdn/v1/{region}/{gateway}/{kind}``, region first so a region's
subscribers filter on one level. Ids are ``[a-z0-9-]{1,63}``."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

PREFIX = "edgecdn/v1"
ID_PATTERN = re.compile(r"[a-z0-9-]{1,63}")
Kind = Literal["status", "telemetry", "results", "alerts", "cmd", "cmd/result"]
KINDS: tuple[Kind, ...] = ("status", "telemetry", "results", "alerts", "cmd", "cmd/result")


def valid_id(value: str) -> bool:
    return ID_PATTERN.fullmatch(value) is not None


def topic(region: str, gateway_id: str, kind: Kind) -> str:
    """The topic of one gateway's ``kind``; ValueError for ids outside the contract."""
    if not (valid_id(region) and valid_id(gateway_id)):
        raise ValueError(f"region {region!r} and gateway id {gateway_id!r} must match [a-z0-9-]{{1,63}}")
    return f"{PREFIX}/{region}/{gateway_id}/{kind}"


def subscription(kind: Kind, *, region: str | None = None) -> str:
    """A filter for ``kind`` of every gateway, in one region or in all."""
    return f"{PREFIX}/{region or '+'}/+/{kind}"


@dataclass(frozen=True, slots=True)
class Where:
    """Whose topic it is."""

    region: str
    gateway_id: str
    kind: Kind


def parse_topic(name: str) -> Where | str:
    """The topic's region, gateway and kind, or why it is not a contract topic."""
    parts = name.split("/", 4)
    if len(parts) != 5 or f"{parts[0]}/{parts[1]}" != PREFIX:
        return "not an edgecdn/v1/{region}/{gateway}/{kind} topic"
    region, gateway_id, kind = parts[2], parts[3], parts[4]
    if not (valid_id(region) and valid_id(gateway_id)):
        return "region and gateway ids must match [a-z0-9-]{1,63}"
    for known in KINDS:
        if kind == known:
            return Where(region, gateway_id, known)
    return f"unexpected kind {kind!r}"
