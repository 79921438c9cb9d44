"""Rollouts on the wire (rollouts.proto): a request's spec into the engine's ``RolloutSpec``, and
a ``Rollout`` into the message ``edgectl`` shows. Pure conversions, no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable

from google.protobuf.duration_pb2 import Duration

from control_plane.deployments import timestamp
from control_plane.rollouts.gates import Figures, GateLimits
from control_plane.rollouts.model import (
    DEFAULT_PROGRESS_DEADLINE_S,
    GateResult,
    Rollout,
    RolloutSpec,
    RolloutState,
    WaveSpec,
    WaveStatus,
)
from control_plane.rollouts.waves import parse_waves
from protos.edgecdn.v1 import rollouts_pb2

STATES: dict[RolloutState, rollouts_pb2.RolloutState.ValueType] = {
    RolloutState.PENDING: rollouts_pb2.ROLLOUT_STATE_PENDING,
    RolloutState.DEPLOYING: rollouts_pb2.ROLLOUT_STATE_DEPLOYING,
    RolloutState.BAKING: rollouts_pb2.ROLLOUT_STATE_BAKING,
    RolloutState.PAUSED: rollouts_pb2.ROLLOUT_STATE_PAUSED,
    RolloutState.SUCCEEDED: rollouts_pb2.ROLLOUT_STATE_SUCCEEDED,
    RolloutState.ROLLING_BACK: rollouts_pb2.ROLLOUT_STATE_ROLLING_BACK,
    RolloutState.ROLLED_BACK: rollouts_pb2.ROLLOUT_STATE_ROLLED_BACK,
    RolloutState.ABORTED: rollouts_pb2.ROLLOUT_STATE_ABORTED,
}


def spec_from_wire(spec: rollouts_pb2.RolloutSpec, known_regions: Iterable[str]) -> RolloutSpec:
    """The engine's spec: ``*`` expanded to every known region in no other wave, limits checked.

    Unknown regions are refused here unless ``allow_empty`` is set (then they count as known).
    """
    named = {region for wave in spec.waves for region in wave.regions if region != "*"}
    known = set(known_regions) | (named if spec.allow_empty else set())
    text = ";".join(",".join(wave.regions) for wave in spec.waves)
    regions = parse_waves(text, known)
    gate = spec.gate
    limits = GateLimits(
        max_error_rate=gate.max_error_rate,
        max_p99_ms=gate.max_p99_latency_ms,
        min_requests=gate.min_requests,
        require_traffic=gate.require_traffic,
        max_error_increase=gate.max_error_increase if gate.HasField("max_error_increase") else None,
    )
    deadline = (
        spec.progress_deadline.ToTimedelta().total_seconds() if spec.HasField("progress_deadline") else 0.0
    )
    return RolloutSpec(
        app=spec.app_name,
        version=spec.app_version,
        waves=tuple(
            WaveSpec(regions=tuple(wave_regions), bake_s=wave.bake_time.ToTimedelta().total_seconds())
            for wave_regions, wave in zip(regions, spec.waves, strict=True)
        ),
        limits=limits,
        progress_deadline_s=deadline or DEFAULT_PROGRESS_DEADLINE_S,
        gateway_module=spec.gateway_module,
    )


def rollout_to_wire(rollout: Rollout, now: float) -> rollouts_pb2.Rollout:
    spec = rollout.spec
    limits = spec.limits
    message = rollouts_pb2.Rollout(
        id=rollout.id,
        state=STATES[rollout.state],
        state_name=rollout.state.value,
        current_wave=rollout.current_wave,
        previous_versions=dict(rollout.previous_versions),
        message=rollout.message,
    )
    message.spec.app_name = spec.app
    message.spec.app_version = spec.version
    message.spec.gateway_module = spec.gateway_module
    message.spec.progress_deadline.CopyFrom(_duration(spec.progress_deadline_s))
    message.spec.gate.max_error_rate = limits.max_error_rate
    message.spec.gate.max_p99_latency_ms = limits.max_p99_ms
    message.spec.gate.min_requests = limits.min_requests
    message.spec.gate.require_traffic = limits.require_traffic
    if limits.max_error_increase is not None:
        message.spec.gate.max_error_increase = limits.max_error_increase
    for wave_spec in spec.waves:
        message.spec.waves.add(regions=wave_spec.regions, bake_time=_duration(wave_spec.bake_s))
    for wave_spec, status in zip(spec.waves, rollout.waves, strict=True):
        message.waves.append(_wave(wave_spec, status, now))
    message.created_at.CopyFrom(timestamp(rollout.created_at))
    message.updated_at.CopyFrom(timestamp(rollout.updated_at))
    for transition in rollout.history:
        message.history.add(
            at=timestamp(transition.at),
            wave=transition.wave,
            from_state=transition.from_state.value,
            to_state=transition.to_state.value,
            reason=transition.reason,
            actor=transition.actor,
        )
    for action in rollout.actions:
        message.actions.add(
            at=timestamp(action.at), kind=action.kind.value, actor=action.actor, reason=action.reason
        )
    return message


def _wave(spec: WaveSpec, status: WaveStatus, now: float) -> rollouts_pb2.WaveStatus:
    wave = rollouts_pb2.WaveStatus(
        index=status.index,
        regions=spec.regions,
        state=STATES[status.state],
        nodes_expected=status.expected_nodes or (),
        nodes_acked=status.acked_nodes,
        bake_elapsed=_duration(status.bake_elapsed_at(now)),
        bake_time=_duration(spec.bake_s),
    )
    if status.started_at is not None:
        wave.started_at.CopyFrom(timestamp(status.started_at))
    if status.deployed_at is not None:
        wave.deployed_at.CopyFrom(timestamp(status.deployed_at))
    if status.deadline_at is not None:
        wave.deadline_at.CopyFrom(timestamp(status.deadline_at))
    if status.gate is not None:
        wave.gate.CopyFrom(_gate(status.gate, status.baseline))
    if status.figures is not None:
        live = GateResult(passed=False, figures=status.figures, reason="")
        wave.live.CopyFrom(_gate(live, status.baseline))
    return wave


def _gate(result: GateResult, baseline: Figures | None) -> rollouts_pb2.GateResult:
    figures = result.figures
    gate = rollouts_pb2.GateResult(
        passed=result.passed,
        requests=figures.requests,
        errors=figures.errors,
        error_rate=figures.error_rate,
        p99_latency_ms=figures.p99_ms or 0.0,
        reason=result.reason,
        gateway_batches=figures.gateway_batches,
        gateway_errors=figures.gateway_errors,
        gateway_rollbacks=figures.gateway_rollbacks,
    )
    if baseline is not None:
        gate.baseline_requests = baseline.requests
        gate.baseline_error_rate = baseline.error_rate
    return gate


def _duration(seconds: float) -> Duration:
    duration = Duration()
    duration.FromNanoseconds(round(seconds * 1e9))
    return duration
