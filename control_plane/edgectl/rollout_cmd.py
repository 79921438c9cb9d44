"""``edgectl rollout``: start, watch and steer progressive rollouts (RolloutService).

    edgectl rollout start NAME@VERSION --waves 'ap-northeast-2;ap-northeast-1,ap-south-1;*'
        --bake 30s --max-error-rate 1% --max-p99 250ms --min-requests 50
        [--max-error-increase 0.5%] [--progress-deadline 60s] [--require-traffic]
        [--allow-empty] [--gateway-module SHA256] [--file rollout.toml] [--watch]
    edgectl rollout list | status ID | watch ID
    edgectl rollout pause ID | resume ID | promote ID [--all] | abort ID --reason TEXT

``;`` separates waves, ``,`` regions within one, ``*`` is every remaining region. A
``--file`` holds the same settings as TOML (flags given on the command line win); see
docs/rollouts.md. ``start``/``status``/actions with ``-o json`` print the rollout as JSON;
``watch -o json`` streams one JSON event per line. ``watch`` and ``start --watch`` exit 0
when the rollout succeeds, 1 when it is rolled back or aborted.
"""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import Any

from rich.live import Live

from control_plane.edgectl.errors import EdgectlError
from control_plane.edgectl.output import console, print_json
from control_plane.edgectl.rollout_output import rollout_dict, rollout_view, rollouts_table, state_word
from cpclient.operator import OperatorClient as Client
from protos.edgecdn.v1 import rollouts_pb2
from runtime.durations import parse_duration

FAILED_ENDINGS = {"rolled_back", "aborted"}
SPEC_KEYS = {
    "app", "waves", "bake", "max_error_rate", "max_p99", "min_requests", "max_error_increase",
    "progress_deadline", "require_traffic", "allow_empty", "gateway_module",
}  # fmt: skip
DEFAULTS: dict[str, Any] = {"bake": "30s", "max_error_rate": "1%", "max_p99": "0ms", "min_requests": 50}


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], output: list[argparse.ArgumentParser]
) -> None:
    rollout = commands.add_parser("rollout", help="progressive rollouts, region by region").add_subparsers(
        dest="action", required=True
    )
    start = rollout.add_parser("start", help="roll NAME@VERSION out in waves", parents=output)
    start.add_argument("ref", nargs="?", help="NAME@VERSION (or `app` in --file)")
    start.add_argument(
        "--waves", help="waves: 'r1;r2,r3;*' (';' between waves, ',' within one, '*' the rest)"
    )
    start.add_argument("--bake", help="how long each wave is watched before the next (default 30s)")
    start.add_argument("--max-error-rate", help="highest 5xx share, e.g. 1%% (default 1%%)")
    start.add_argument("--max-p99", help="highest p99 latency, e.g. 250ms (default: not gated)")
    start.add_argument("--min-requests", type=int, help="fewest requests to judge a wave (default 50)")
    start.add_argument(
        "--max-error-increase", help="highest rise over the previous version's 5xx share, e.g. 0.5%%"
    )
    start.add_argument("--progress-deadline", help="a wave's nodes must all ACK within this (default 60s)")
    start.add_argument(
        "--require-traffic", action="store_true", default=None, help="fail a wave with too little traffic"
    )
    start.add_argument(
        "--allow-empty", action="store_true", default=None, help="accept regions no node has reported"
    )
    start.add_argument(
        "--gateway-module",
        metavar="SHA256",
        help="also move each wave's IoT gateways to this telemetry module (alone: gateways only)",
    )
    start.add_argument("--file", type=Path, help="rollout settings as TOML (flags win)")
    start.add_argument("--watch", action="store_true", help="stay and watch it to the end")
    rollout.add_parser("list", help="rollouts, newest first", parents=output)
    for name, summary in (
        ("status", "one rollout, its waves and history"),
        ("watch", "a live view until it ends"),
    ):
        rollout.add_parser(name, help=summary, parents=output).add_argument("id")
    for name, summary in (
        ("pause", "hold the rollout (the bake clock stops)"),
        ("resume", "continue a paused rollout"),
        ("promote", "skip the rest of this wave's bake (--all: every remaining judgement)"),
        ("abort", "stop and roll every touched region back"),
    ):
        action = rollout.add_parser(name, help=summary, parents=output)
        action.add_argument("id")
        action.add_argument("--reason", required=name == "abort", default="", help="why, for the record")
        if name == "promote":
            action.add_argument("--all", action="store_true", help="skip every remaining judgement")


async def rollout_command(client: Client, args: argparse.Namespace) -> int:
    action = args.action
    if action == "start":
        rollout = await client.start_rollout(spec_from_args(args))
        if args.watch:
            return await _watch(client, rollout.id, args.output)
        return _show(rollout, args.output)
    if action == "list":
        rollouts = await client.list_rollouts()
        if args.output == "json":
            print_json([rollout_dict(r) for r in rollouts])
        else:
            console().print(rollouts_table(rollouts) if rollouts else "no rollouts yet")
        return 0
    if action == "status":
        return _show(await client.get_rollout(args.id), args.output, history=True)
    if action == "watch":
        return await _watch(client, args.id, args.output)
    rollout = await client.rollout_action(
        action, args.id, reason=args.reason, all_waves=getattr(args, "all", False)
    )
    return _show(rollout, args.output)


def _show(rollout: rollouts_pb2.Rollout, output: str, *, history: bool = False) -> int:
    if output == "json":
        print_json(rollout_dict(rollout))
        return 0
    out = console()
    out.print(rollout_view(rollout))
    if history and rollout.history:
        out.print("history:")
        for t in rollout.history:
            wave = "" if t.wave < 0 else f"wave {t.wave + 1} "
            line = f"{t.at.ToDatetime():%H:%M:%S} {wave}{t.from_state} -> {t.to_state} ({t.actor})"
            out.print(f"  {line}: {t.reason}", markup=False)
    return 0


async def _watch(client: Client, rollout_id: str, output: str) -> int:
    last: rollouts_pb2.Rollout | None = None
    if output == "json":
        async for change in client.watch_rollout(rollout_id):
            last = change.rollout
            sys.stdout.write(
                json.dumps({"event": change.event, "rollout": rollout_dict(change.rollout)}) + "\n"
            )
            sys.stdout.flush()
    else:
        out = console()
        event = ""
        # The live view is redrawn in place; the final state is printed once after it, whole.
        with Live(console=out, refresh_per_second=4, transient=True) as live:
            async for change in client.watch_rollout(rollout_id):
                last, event = change.rollout, change.event
                live.update(rollout_view(change.rollout, change.event))
        if last is not None:
            out.print(rollout_view(last, event))
    if last is None:
        raise EdgectlError(f"rollout {rollout_id}: the control plane sent nothing")
    return 1 if (last.state_name or state_word(last.state)) in FAILED_ENDINGS else 0


def spec_from_args(args: argparse.Namespace) -> rollouts_pb2.RolloutSpec:
    """The spec from ``--file`` (if any) with the command line's flags on top."""
    settings: dict[str, Any] = dict(DEFAULTS)
    if args.file is not None:
        settings |= _read_file(args.file)
    flags = {key: getattr(args, key) for key in SPEC_KEYS - {"app"}} | {"app": args.ref}
    settings |= {key: value for key, value in flags.items() if value is not None}
    return build_spec(settings)


def build_spec(settings: dict[str, Any]) -> rollouts_pb2.RolloutSpec:
    name, _, version = str(settings.get("app") or "").partition("@")
    module = str(settings.get("gateway_module") or "")
    if (not name or not version) and not (module and not name):
        raise EdgectlError(
            'rollout start needs NAME@VERSION (or app = "NAME@VERSION" in --file), '
            "or --gateway-module SHA256, or both",
            exit_code=2,
        )
    waves = settings.get("waves")
    if not waves:
        raise EdgectlError(
            "rollout start needs --waves, e.g. 'ap-northeast-2;ap-northeast-1,ap-south-1;*'", exit_code=2
        )
    spec = rollouts_pb2.RolloutSpec(
        app_name=name,
        app_version=version,
        allow_empty=bool(settings.get("allow_empty")),
        gateway_module=module,
    )
    bake = _seconds(settings["bake"], "--bake")
    for wave in _waves(waves):
        added = spec.waves.add(regions=wave["regions"])
        added.bake_time.FromNanoseconds(round(_seconds(wave.get("bake", bake), "bake") * 1e9))
    gate = spec.gate
    gate.max_error_rate = _share(settings["max_error_rate"], "--max-error-rate")
    gate.max_p99_latency_ms = _seconds(settings["max_p99"], "--max-p99") * 1000
    gate.min_requests = _count(settings["min_requests"], "--min-requests")
    gate.require_traffic = bool(settings.get("require_traffic"))
    if settings.get("max_error_increase") is not None:
        gate.max_error_increase = _share(settings["max_error_increase"], "--max-error-increase")
    if settings.get("progress_deadline") is not None:
        spec.progress_deadline.FromNanoseconds(
            round(_seconds(settings["progress_deadline"], "--progress-deadline") * 1e9)
        )
    return spec


def _waves(waves: Any) -> list[dict[str, Any]]:
    """``'a;b,c;*'``, or a list of ``{regions = [...], bake = "10s"}`` tables from a file."""
    if isinstance(waves, str):
        return [{"regions": [region.strip() for region in part.split(",")]} for part in waves.split(";")]
    if isinstance(waves, list) and all(
        isinstance(w, dict) and isinstance(w.get("regions"), list) for w in waves
    ):
        return [
            {"regions": [str(r) for r in w["regions"]], **({"bake": w["bake"]} if "bake" in w else {})}
            for w in waves
        ]
    raise EdgectlError(
        "waves: a string like 'r1;r2,r3;*' or [[waves]] tables with regions = [...]", exit_code=2
    )


def _read_file(path: Path) -> dict[str, Any]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise EdgectlError(f"--file {path}: {exc}", exit_code=2) from exc
    unknown = sorted(set(data) - SPEC_KEYS)
    if unknown:
        raise EdgectlError(
            f"--file {path}: unknown key {unknown[0]!r} (known: {', '.join(sorted(SPEC_KEYS))})", exit_code=2
        )
    return data


def _seconds(value: Any, flag: str) -> float:
    try:
        return float(value) if isinstance(value, int | float) else parse_duration(str(value))
    except ValueError as exc:
        raise EdgectlError(f"{flag}: {exc}", exit_code=2) from exc


def _share(value: Any, flag: str) -> float:
    text = str(value).strip()
    try:
        share = float(text[:-1]) / 100 if text.endswith("%") else float(text)
    except ValueError as exc:
        raise EdgectlError(f"{flag}: {value!r} is not a share like 1% or 0.01", exit_code=2) from exc
    return share


def _count(value: Any, flag: str) -> int:
    try:
        return int(value)
    except (TypeError, ValueError) as exc:
        raise EdgectlError(f"{flag}: {value!r} is not a whole number", exit_code=2) from exc
