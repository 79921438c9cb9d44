"""Gateways in rollouts, for the driver: which gateways a wave moves, how far their
``update_module`` got (as wave progress the machine counts), their health figures since the
wave deployed, and what a rollback sends back to each gateway (docs/rollouts.md).

Plain functions over the gateway registry's ``Gateway`` values and the coordinator's
``GatewayResult``s, tested directly; ``GatewayMover`` is the small async part that sends
through the coordinator in background tasks.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from control_plane.errors import NotFoundError
from control_plane.gateways.commands import MAX_DEADLINE_S, CommandSpec, GatewayResult, Targets
from control_plane.gateways.errors import GatewayError
from control_plane.gateways.registry import Gateway
from control_plane.rollouts.errors import ActionRefusedError, RolloutError
from control_plane.rollouts.gates import Figures
from control_plane.rollouts.model import Rollout, RolloutSpec

if TYPE_CHECKING:
    from control_plane.gateways.coordinator import Coordinator

logger = logging.getLogger(__name__)

NO_BROKER = "no MQTT broker configured (--mqtt): gateways cannot be rolled out"


class GatewayRolloutRefusedError(ActionRefusedError):
    """A rollout with a gateway module cannot start (FAILED_PRECONDITION); ``reason`` says why."""

    def __init__(self, *, reason: str, rollout_id: str = "", state: str = "") -> None:
        RolloutError.__init__(self, reason)
        self.rollout_id = rollout_id
        self.state = state
        self.action = "start"
        self.reason = reason


def gateway_key(gateway: Gateway) -> str:
    """How ``Rollout.gateway_modules_before`` names a gateway: ``region/gateway_id``."""
    return f"{gateway.region}/{gateway.gateway_id}"


def modules_before(gateways: Iterable[Gateway], regions: Iterable[str]) -> dict[str, str]:
    """The module of every known gateway (online or not) in ``regions``, by ``region/id``."""
    wanted = set(regions)
    return {gateway_key(g): g.module_sha256 for g in gateways if g.region in wanted}


def wave_targets(gateways: Iterable[Gateway], regions: Iterable[str]) -> tuple[list[Gateway], list[Gateway]]:
    """The wave regions' gateways: (online ones, which get the module; offline ones, skipped)."""
    wanted = set(regions)
    chosen = [g for g in gateways if g.region in wanted]
    return [g for g in chosen if g.online], [g for g in chosen if not g.online]


@dataclass(slots=True)
class GatewaySend:
    """One command to some gateways, in flight: whom it went to and the results so far.
    ``failure`` is set when it could not be sent at all (the broker is away)."""

    targeted: tuple[str, ...]
    results: dict[str, GatewayResult] = field(default_factory=dict)
    failure: str = ""

    @property
    def done(self) -> bool:
        return bool(self.failure) or set(self.targeted) <= set(self.results)

    def first_failure(self) -> tuple[str, str] | None:
        """(gateway id, why) of the first gateway that refused or did not answer, if any."""
        if self.failure:
            return (self.targeted[0] if self.targeted else "gateways", self.failure)
        for gateway_id in self.targeted:
            result = self.results.get(gateway_id)
            if result is not None and not result.ok:
                return gateway_id, result.message or ("timed out" if result.timed_out else "refused")
        return None

    def acked(self) -> tuple[str, ...]:
        return tuple(g for g in self.targeted if (r := self.results.get(g)) is not None and r.ok)


@dataclass(frozen=True, slots=True, kw_only=True)
class WaveGateways:
    """The wave's progress counted over edge nodes and gateways alike (the machine only counts)."""

    expected: tuple[str, ...]
    acked: tuple[str, ...]
    nack: tuple[str, str] | None


def combined_progress(
    edge_expected: tuple[str, ...], edge_acked: tuple[str, ...], send: GatewaySend | None
) -> WaveGateways:
    """Edge nodes expected/ACKed plus the gateways targeted/answered ok; a gateway's refusal or
    time-out is the wave's NACK."""
    if send is None:
        return WaveGateways(expected=edge_expected, acked=edge_acked, nack=None)
    return WaveGateways(
        expected=(*edge_expected, *send.targeted),
        acked=(*edge_acked, *send.acked()),
        nack=send.first_failure(),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Counters:
    """A gateway's health counters at one moment."""

    batches: int = 0
    errors: int = 0
    rollbacks: int = 0


def counters_of(gateway: Gateway) -> Counters:
    """Its counters: the batches its module processed (``batches_total`` of its status, else the
    results the control plane received), module errors and self-rollbacks."""
    total = gateway.status.get("batches_total")
    batches = total if isinstance(total, int) and not isinstance(total, bool) and total >= 0 else None
    return Counters(
        batches=gateway.results_received if batches is None else batches,
        errors=gateway.module_errors_total,
        rollbacks=gateway.rollbacks_total,
    )


def _since(now: int, then: int) -> int:
    # A counter that went down means the gateway restarted: all it counted since is new.
    return now - then if now >= then else now


def gateway_figures(
    edge: Figures, baseline: Mapping[str, Counters], gateways: Iterable[Gateway], regions: Iterable[str]
) -> Figures:
    """``edge`` with the wave regions' gateway counters since ``baseline`` (by gateway id; a
    gateway without one counts from zero change, i.e. is not counted)."""
    wanted = set(regions)
    batches = errors = rollbacks = 0
    for gateway in gateways:
        before = baseline.get(gateway.gateway_id)
        if gateway.region not in wanted or before is None:
            continue
        now = counters_of(gateway)
        batches += _since(now.batches, before.batches)
        errors += _since(now.errors, before.errors)
        rollbacks += _since(now.rollbacks, before.rollbacks)
    return replace(edge, gateway_batches=batches, gateway_errors=errors, gateway_rollbacks=rollbacks)


def restore_plan(
    before: Mapping[str, str], region: str, gateways: Iterable[Gateway]
) -> dict[str, tuple[str, ...]]:
    """What a rollback sends in ``region``: previous module -> the gateway ids to get it. Skipped:
    gateways already on it, those that ran no module before (""), and those no longer known."""
    current = {g.gateway_id: g.module_sha256 for g in gateways if g.region == region}
    plan: dict[str, list[str]] = {}
    for key, module in sorted(before.items()):
        key_region, _, gateway_id = key.partition("/")
        if key_region != region or not module or gateway_id not in current:
            continue
        if current[gateway_id] != module:
            plan.setdefault(module, []).append(gateway_id)
    return {module: tuple(ids) for module, ids in plan.items()}


def check_gateway_start(
    spec: RolloutSpec, mover: GatewayMover | None, has_module: Callable[[str], bool], busy: Sequence[Rollout]
) -> dict[str, str]:
    """Refuse a gateway module without a broker, unknown to the module registry, or while
    another rollout (``busy``) moves gateways; else the module of every gateway (online or
    known) in the spec's regions, by ``region/gateway_id``."""
    if mover is None:
        raise GatewayRolloutRefusedError(reason=NO_BROKER)
    if not has_module(spec.gateway_module):
        raise NotFoundError(kind="module", key=f"{spec.gateway_module} (push it first: edgectl modules push)")
    if busy:
        raise GatewayRolloutRefusedError(
            rollout_id=busy[0].id,
            state=busy[0].state.value,
            reason=f"rollout {busy[0].id} ({busy[0].spec.label}) is moving gateways; one rollout with a "
            "gateway module at a time (abort it first)",
        )
    regions = [region for wave in spec.waves for region in wave.regions]
    return modules_before(mover.gateways(regions), regions)


class GatewayMover:
    """The async half: sends ``update_module`` for waves and rollbacks through the coordinator
    as background tasks (kept here until done), and keeps their results and each wave
    gateway's counters when its update answered (the gate's baseline). In memory only: after a
    restart the machine re-sends what is in flight (``Resumed``)."""

    def __init__(self, coordinator: Coordinator) -> None:
        self._coordinator = coordinator
        self._tasks: dict[tuple[str, str], asyncio.Task[None]] = {}
        self.waves: dict[tuple[str, int], GatewaySend] = {}
        self.restores: dict[tuple[str, str], GatewaySend] = {}
        self._baselines: dict[tuple[str, int], dict[str, Counters]] = {}

    def gateways(self, regions: Iterable[str]) -> list[Gateway]:
        return self._coordinator.gateways(regions)

    def deploy(
        self, rollout_id: str, wave: int, regions: Iterable[str], module: str, deadline_s: float
    ) -> list[Gateway]:
        """Move the online gateways of ``regions`` to ``module``; the offline ones (skipped)."""
        online, offline = wave_targets(self._coordinator.gateways(), regions)
        send = GatewaySend(targeted=tuple(g.gateway_id for g in online))
        self.waves[(rollout_id, wave)] = send
        baseline = self._baselines.setdefault((rollout_id, wave), {})
        if online:
            plan = {module: send.targeted}
            self._start(f"{rollout_id}/wave-{wave}", send, plan, deadline_s, baseline)
        return offline

    def restore(self, rollout_id: str, region: str, before: Mapping[str, str], deadline_s: float) -> None:
        """Put ``region``'s gateways back on the modules they ran before the rollout."""
        known = self._coordinator.gateways([region])
        plan = restore_plan(before, region, [g for g in known if g.online])
        offline = sorted(_stale(before, known))
        if offline:
            logger.warning(
                "gateways %s are offline: their previous module is not restored", ", ".join(offline)
            )
        send = GatewaySend(targeted=tuple(g for ids in plan.values() for g in ids))
        self.restores[(rollout_id, region)] = send
        if plan:
            self._start(f"{rollout_id}/restore-{region}", send, plan, deadline_s, None)

    def figures(self, rollout_id: str, wave: int, edge: Figures, regions: Iterable[str]) -> Figures:
        """``edge`` plus the wave gateways' counters since their update answered (a gateway
        with no baseline yet, e.g. after a restart, gets one now)."""
        regions = tuple(regions)
        gateways = self._coordinator.gateways(regions)
        baseline = self._baselines.setdefault((rollout_id, wave), {})
        for gateway in gateways:
            baseline.setdefault(gateway.gateway_id, counters_of(gateway))
        return gateway_figures(edge, baseline, gateways, regions)

    def _start(
        self,
        name: str,
        send: GatewaySend,
        plan: Mapping[str, tuple[str, ...]],
        deadline_s: float,
        baseline: dict[str, Counters] | None,
    ) -> None:
        key = (name, secrets.token_hex(3))
        task = asyncio.get_running_loop().create_task(
            self._send(send, plan, min(deadline_s, MAX_DEADLINE_S), baseline), name=f"gateways-{name}"
        )
        self._tasks[key] = task
        task.add_done_callback(lambda _task: self._tasks.pop(key, None))

    async def _send(
        self,
        send: GatewaySend,
        plan: Mapping[str, tuple[str, ...]],
        deadline_s: float,
        baseline: dict[str, Counters] | None,
    ) -> None:
        try:
            for module, ids in plan.items():
                command = CommandSpec(kind="update_module", sha256=module)
                results = await self._coordinator.send(command, Targets(gateway_ids=ids), deadline_s)
                for result in results:
                    send.results[result.gateway_id] = result
                    gateway = self._coordinator.registry.get(result.gateway_id)
                    if baseline is not None and gateway is not None:
                        baseline[result.gateway_id] = counters_of(gateway)
        except GatewayError as exc:
            send.failure = str(exc)
        except Exception as exc:  # a bug must not leave the wave waiting for ever
            logger.exception("sending update_module to gateways failed")
            send.failure = f"sending failed: {exc}"


def _stale(before: Mapping[str, str], gateways: Iterable[Gateway]) -> set[str]:
    """Offline gateways a rollback would move back (not on their previous module)."""
    return {
        g.gateway_id
        for g in gateways
        if not g.online and before.get(gateway_key(g)) and before[gateway_key(g)] != g.module_sha256
    }
