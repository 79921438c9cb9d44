"""How ``edgectl rollout`` shows rollouts: JSON with lower-case state words, tables that fit 80
columns, and the live view of ``watch`` (rich), one row per wave.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from protos.edgecdn.v1 import rollouts_pb2

STATE_STYLES = {
    "succeeded": "green",
    "rolled_back": "red",
    "aborted": "red",
    "rolling_back": "yellow",
    "paused": "cyan",
    "baking": "blue",
    "deploying": "blue",
}


def state_word(state: int) -> str:
    """``ROLLOUT_STATE_ROLLED_BACK`` -> ``rolled_back``."""
    try:
        return rollouts_pb2.RolloutState.Name(state).removeprefix("ROLLOUT_STATE_").lower()  # type: ignore[arg-type]
    except ValueError:
        return f"state-{state}"


def gate_dict(gate: rollouts_pb2.GateResult) -> dict[str, Any]:
    return {
        "passed": gate.passed,
        "requests": gate.requests,
        "errors": gate.errors,
        "error_rate": round(gate.error_rate, 6),
        "p99_latency_ms": round(gate.p99_latency_ms, 3),
        "baseline_requests": gate.baseline_requests,
        "baseline_error_rate": round(gate.baseline_error_rate, 6),
        "reason": gate.reason,
    }


def rollout_dict(rollout: rollouts_pb2.Rollout) -> dict[str, Any]:
    """The rollout as ``-o json`` prints it (keys only ever added)."""
    gate = rollout.spec.gate
    return {
        "id": rollout.id,
        "app": rollout.spec.app_name,
        "version": rollout.spec.app_version,
        "state": rollout.state_name or state_word(rollout.state),
        "current_wave": rollout.current_wave,
        "message": rollout.message,
        "previous_versions": dict(sorted(rollout.previous_versions.items())),
        "limits": {
            "max_error_rate": gate.max_error_rate,
            "max_p99_latency_ms": gate.max_p99_latency_ms,
            "min_requests": gate.min_requests,
            "require_traffic": gate.require_traffic,
            "max_error_increase": gate.max_error_increase if gate.HasField("max_error_increase") else None,
            "progress_deadline_s": rollout.spec.progress_deadline.ToTimedelta().total_seconds(),
        },
        "waves": [
            {
                "index": wave.index,
                "regions": list(wave.regions),
                "state": state_word(wave.state),
                "bake_s": wave.bake_time.ToTimedelta().total_seconds(),
                "bake_elapsed_s": round(wave.bake_elapsed.ToTimedelta().total_seconds(), 3),
                "nodes_expected": list(wave.nodes_expected),
                "nodes_acked": list(wave.nodes_acked),
                "gate": gate_dict(wave.gate) if wave.HasField("gate") else None,
                "live": gate_dict(wave.live) if wave.HasField("live") else None,
            }
            for wave in rollout.waves
        ],
        "history": [
            {
                "at": t.at.ToJsonString(),
                "wave": t.wave,
                "from": t.from_state,
                "to": t.to_state,
                "reason": t.reason,
                "actor": t.actor,
            }
            for t in rollout.history
        ],
        "actions": [
            {"at": a.at.ToJsonString(), "kind": a.kind, "actor": a.actor, "reason": a.reason}
            for a in rollout.actions
        ],
        "created_at": rollout.created_at.ToJsonString(),
        "updated_at": rollout.updated_at.ToJsonString(),
    }


def _styled(word: str) -> Text:
    return Text(word, style=STATE_STYLES.get(word, ""))


def rollouts_table(rollouts: list[rollouts_pb2.Rollout]) -> Table:
    table = Table(box=None, pad_edge=False)
    for name in ("ID", "APP", "STATE", "WAVE", "UPDATED"):
        table.add_column(name, no_wrap=True)
    for rollout in rollouts:
        table.add_row(
            rollout.id,
            f"{rollout.spec.app_name}@{rollout.spec.app_version}",
            _styled(rollout.state_name or state_word(rollout.state)),
            f"{min(rollout.current_wave + 1, len(rollout.waves))}/{len(rollout.waves)}",
            rollout.updated_at.ToDatetime().strftime("%H:%M:%S"),
        )
    return table


def _figures(gate: rollouts_pb2.GateResult, limits: rollouts_pb2.HealthGate) -> str:
    words = [f"{gate.requests:,} req", f"5xx {gate.error_rate * 100:.1f}%/{limits.max_error_rate * 100:g}%"]
    if limits.max_p99_latency_ms:
        words.append(f"p99 {gate.p99_latency_ms:.0f}/{limits.max_p99_latency_ms:g}ms")
    return " ".join(words)


def wave_table(rollout: rollouts_pb2.Rollout, *, wide: bool = False) -> Table:
    """One row per wave: state, ACKs, bake, the gate's figures against the limits (80 columns)."""
    table = Table(box=None, pad_edge=False, expand=False)
    table.add_column("#", justify="right")
    table.add_column("REGIONS", overflow="fold", max_width=None if wide else 22)
    table.add_column("STATE", no_wrap=True)
    table.add_column("ACKS", no_wrap=True)
    table.add_column("BAKE", no_wrap=True)
    table.add_column("GATE", overflow="fold")
    limits = rollout.spec.gate
    for wave in rollout.waves:
        expected = len(wave.nodes_expected)
        acks = (
            f"{_bar(len(wave.nodes_acked), expected)} {len(wave.nodes_acked)}/{expected}" if expected else "-"
        )
        bake_total = wave.bake_time.ToTimedelta().total_seconds()
        bake_done = wave.bake_elapsed.ToTimedelta().total_seconds()
        bake = f"{_bar(bake_done, bake_total)} {bake_done:.0f}/{bake_total:.0f}s"
        gate = wave.gate if wave.HasField("gate") else wave.live if wave.HasField("live") else None
        table.add_row(
            str(wave.index + 1),
            ", ".join(wave.regions),
            _styled(state_word(wave.state)),
            acks,
            bake,
            "-" if gate is None else _figures(gate, limits),
        )
    return table


def _bar(done: float, total: float, width: int = 5) -> str:
    """A progress bar in text (it fits a table cell and a pipe)."""
    filled = width if total <= 0 else round(width * min(1.0, done / total))
    return "█" * filled + "░" * (width - filled)


def rollout_view(rollout: rollouts_pb2.Rollout, last_event: str = "") -> Group:
    state = rollout.state_name or state_word(rollout.state)
    head = Text.assemble(
        (f"rollout {rollout.id} ", "bold"),
        f"{rollout.spec.app_name}@{rollout.spec.app_version}  ",
        _styled(state),
    )
    parts: list[Any] = [head, wave_table(rollout)]
    if rollout.message:
        parts.append(Text(rollout.message, overflow="fold"))
    if last_event and last_event != rollout.message:
        parts.append(Text(f"last: {last_event}", style="dim", overflow="fold"))
    return Group(*parts)
