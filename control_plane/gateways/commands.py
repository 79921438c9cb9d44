"""Commands for gateways and whom they go to: the one place their rules are checked.

Pure: ``check_command`` judges a command (kind, digest known to the module registry,
interval range) and ``select`` resolves targets against the registry's gateways, before
anything is published. The gRPC service and the rollout engine both come through here.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from control_plane.gateways.errors import (
    InvalidCommandError,
    NoGatewaysMatchError,
    UnknownGatewaysError,
    UnknownModuleError,
)
from control_plane.gateways.registry import Gateway
from iotwire.payloads import COMMAND_KINDS, MAX_INTERVAL_S, MIN_INTERVAL_S, CommandKind

DEFAULT_DEADLINE_S = 10.0
MAX_DEADLINE_S = 300.0
_SHA256 = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CommandSpec:
    """What to do: ``update_module`` (``sha256``), ``set_interval`` (``interval_s``) or ``ping``."""

    kind: CommandKind
    sha256: str = ""
    interval_s: float = 0.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Targets:
    """Which gateways: every one (``all``), or by ids or regions; ``labels`` narrow any of
    them (with nothing else given, labels select among all gateways)."""

    gateway_ids: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    labels: Mapping[str, str] = field(default_factory=dict)
    all: bool = False

    def describe(self) -> str:
        parts = [f"gateways {', '.join(self.gateway_ids)}"] if self.gateway_ids else []
        parts += [f"regions {', '.join(self.regions)}"] if self.regions else []
        parts += ["all gateways"] if self.all else []
        labels = ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()))
        return " ".join(parts + ([f"labels {labels}"] if labels else []))


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayResult:
    """One gateway's answer to a command, or why there is none (``timed_out``)."""

    gateway_id: str
    region: str
    ok: bool
    message: str
    timed_out: bool = False
    status: Mapping[str, Any] = field(default_factory=dict)
    elapsed_s: float = 0.0


def check_command(command: CommandSpec, *, has_module: Callable[[str], bool]) -> None:
    """Raise InvalidCommandError or UnknownModuleError when the command cannot be sent."""
    if command.kind not in COMMAND_KINDS:
        raise InvalidCommandError(field="command", reason=f"unknown kind {command.kind!r}")
    if command.kind == "update_module":
        if not _SHA256.fullmatch(command.sha256):
            raise InvalidCommandError(field="update_module.sha256", reason="must be 64 lower-case hex digits")
        if not has_module(command.sha256):
            raise UnknownModuleError(sha256=command.sha256)
    if command.kind == "set_interval" and not MIN_INTERVAL_S <= command.interval_s <= MAX_INTERVAL_S:
        raise InvalidCommandError(
            field="set_sample_interval.interval",
            reason=f"{command.interval_s:g}s is outside {MIN_INTERVAL_S:g}s .. {MAX_INTERVAL_S:g}s",
        )


def check_deadline(deadline_s: float) -> float:
    """The deadline to use: 0 means the default; otherwise within (0, MAX_DEADLINE_S]."""
    if deadline_s == 0:
        return DEFAULT_DEADLINE_S
    if not 0 < deadline_s <= MAX_DEADLINE_S:
        raise InvalidCommandError(
            field="deadline", reason=f"{deadline_s:g}s is outside (0s, {MAX_DEADLINE_S:g}s]"
        )
    return deadline_s


def select(targets: Targets, gateways: Sequence[Gateway]) -> list[Gateway]:
    """The gateways ``targets`` name, in registry order. Unknown ids or regions are refused
    rather than skipped: a typo must not pass for "done"."""
    if targets.all and (targets.gateway_ids or targets.regions):
        raise InvalidCommandError(field="target", reason="`all` excludes gateway ids and regions")
    if not (targets.all or targets.gateway_ids or targets.regions or targets.labels):
        raise InvalidCommandError(field="target", reason="name gateway ids, regions, labels or all")
    known = {g.gateway_id for g in gateways}
    unknown = tuple(sorted(set(targets.gateway_ids) - known))
    if unknown:
        raise UnknownGatewaysError(what="gateway ids" if len(unknown) > 1 else "gateway id", names=unknown)
    missing = tuple(sorted(set(targets.regions) - {g.region for g in gateways}))
    if missing:
        raise UnknownGatewaysError(what="regions (no gateway there)", names=missing)
    ids, regions = set(targets.gateway_ids), set(targets.regions)
    chosen = [
        g
        for g in gateways
        if (not (ids or regions) or g.gateway_id in ids or g.region in regions)
        and all(g.labels.get(k) == v for k, v in targets.labels.items())
    ]
    if not chosen:
        raise NoGatewaysMatchError(targets=targets.describe())
    return chosen
