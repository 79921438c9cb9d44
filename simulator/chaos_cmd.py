"""``edgecdn chaos``: inject faults into the running local world (it reads world.json).

    edgecdn chaos kill TARGET [--signal KILL|TERM|INT]    kill processes (the world restarts them)
    edgecdn chaos freeze TARGET [--for 30s]               SIGSTOP: alive but silent
    edgecdn chaos thaw TARGET                             SIGCONT
    edgecdn chaos partition REGION --from control-plane [--for 30s]
                                                          cut a region's nodes off the control plane
    edgecdn chaos wan REGION [--latency 200ms] [--loss 5%] [--for 60s]
                                                          degrade the network of a region's clients
    edgecdn chaos heal                                    undo every fault
    edgecdn chaos run SCENARIO.toml                       a timeline of faults (docs/chaos.md)
    edgecdn chaos events [--last N]                       the world's fault and restart log

TARGET is control-plane, router, fault-relay, an edge node id (ap-northeast-2-a), a region
id (all its edge nodes) or a process name as `edgecdn status` shows it. A fault with --for
waits, then ends (also when this command is interrupted); the relay and the router also end
it by themselves, so it never outlives its --for. A fault without --for lasts until
`edgecdn chaos heal` (or `thaw`). Every fault is written to .edgecdn/chaos-events.jsonl,
which `edgecdn load` draws on its report.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

from rich.console import Console

from runtime.cli import HelpFormatter, add_state_dir_flag, fail
from runtime.errors import WorldStateError
from runtime.events import events_path, read_events
from runtime.process import StopEvent, serve_until_signalled
from runtime.world_state import STATE_FILE_NAME, WorldState, read_world_state
from simulator.chaos.faults import SIGNALS, Fault, parse_loss, parse_seconds
from simulator.chaos.injector import WorldChaos
from simulator.chaos.scenario import Scenario, load_scenario, plan
from simulator.errors import ChaosError

PROG = "edgecdn chaos"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "chaos",
        help="inject faults into the running world",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    add_state_dir_flag(parser)
    commands = parser.add_subparsers(dest="chaos_command", metavar="ACTION", required=True)
    kill = _action(commands, "kill", "send a signal that ends processes (the world restarts them)")
    kill.add_argument("target", metavar="TARGET")
    kill.add_argument("--signal", default="KILL", choices=SIGNALS, help="signal (default: %(default)s)")
    freeze = _action(commands, "freeze", "SIGSTOP processes: alive, holding their sockets, silent")
    freeze.add_argument("target", metavar="TARGET")
    _for_flag(freeze)
    _action(commands, "thaw", "SIGCONT frozen processes").add_argument("target", metavar="TARGET")
    partition = _action(commands, "partition", "cut a region's edge nodes off the control plane")
    partition.add_argument("target", metavar="REGION")
    partition.add_argument(
        "--from", dest="peer", required=True, choices=["control-plane"], help="what the region loses"
    )
    _for_flag(partition)
    wan = _action(commands, "wan", "add latency and packet loss between clients and a region")
    wan.add_argument("target", metavar="REGION")
    wan.add_argument(
        "--latency", default="0ms", help="extra one-way latency, e.g. 200ms (default: %(default)s)"
    )
    wan.add_argument("--loss", default="0%", help="packet loss, e.g. 5%% (default: %(default)s)")
    _for_flag(wan)
    _action(commands, "heal", "undo every fault (relay, router, frozen processes)")
    run = _action(commands, "run", "play a scenario: a timeline of faults (docs/chaos.md)")
    run.add_argument("scenario", type=Path, metavar="SCENARIO.toml")
    events = _action(commands, "events", "print the world's fault and restart log")
    events.add_argument("--last", type=int, default=20, help="how many of the newest (default: %(default)s)")


def _action(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter)
    parser.set_defaults(handler=_handle)
    return parser


def _for_flag(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--for", dest="for_", default=None, metavar="DURATION", help="end the fault after this (e.g. 30s)"
    )


def _handle(args: argparse.Namespace) -> int:
    console = Console(highlight=False)
    try:
        if args.chaos_command == "events":
            return _print_events(args.state_dir, args.last, console)
        state = read_world_state(args.state_dir / STATE_FILE_NAME)
        events_file = Path(state.events_file) if state.events_file else events_path(args.state_dir)
        if args.chaos_command == "run":
            scenario = load_scenario(args.scenario)
            return _serve(lambda stop: run_scenario(state, scenario, events_file, console, stop))
        fault = _fault(args)
    except (ChaosError, WorldStateError) as exc:
        fail(PROG, str(exc))
    return _serve(lambda stop: inject_one(state, fault, events_file, console, stop))


def _fault(args: argparse.Namespace) -> Fault:
    action = args.chaos_command
    for_s = parse_seconds(args.for_, what="--for") if getattr(args, "for_", None) else None
    if action == "wan":
        latency_ms = parse_seconds(args.latency, what="--latency") * 1000
        return Fault(
            action="wan", target=args.target, for_s=for_s, latency_ms=latency_ms, loss=parse_loss(args.loss)
        )
    if action == "kill":
        return Fault(action="kill", target=args.target, signal=args.signal)
    return Fault(action=action, target=getattr(args, "target", ""), for_s=for_s)


def _serve(main: Callable[[StopEvent], Awaitable[int]]) -> int:
    outcome: list[int] = []

    async def runner(stop: StopEvent) -> None:
        try:
            outcome.append(await main(stop))
        except ChaosError as exc:
            sys.stderr.write(f"{PROG}: {exc}\n")
            outcome.append(1)

    serve_until_signalled(runner)
    return outcome[0] if outcome else 130


async def inject_one(
    state: WorldState, fault: Fault, events_file: Path, console: Console, stop: StopEvent
) -> int:
    """Inject ``fault``; with ``--for``, hold it that long (or until interrupted), then end it."""
    async with WorldChaos(state, events_file=events_file) as chaos:
        chaos.check(fault)
        console.print(await chaos.inject(fault))
        if fault.for_s is None:
            if fault.lasting:
                console.print(
                    "it lasts until `edgecdn chaos heal`" + (" or `thaw`" if fault.action == "freeze" else "")
                )
            return 0
        console.print(f"holding it for {fault.for_s:g}s (Ctrl-C ends it now) ...")
        interrupted = await _sleep_or_stop(fault.for_s, stop)
        message = await chaos.undo(fault)
        if message:
            console.print(message)
        return 130 if interrupted else 0


async def run_scenario(
    state: WorldState, scenario: Scenario, events_file: Path, console: Console, stop: StopEvent
) -> int:
    """Play ``scenario``; whatever it left in force is undone at its end or when interrupted."""
    moments = plan(scenario)
    async with WorldChaos(state, events_file=events_file) as chaos:
        for step in scenario.steps:  # every target checked before the first fault
            chaos.check(step.fault)
        console.print(
            f"scenario {scenario.name!r}: {len(scenario.steps)} faults over {scenario.duration_s:g}s"
            " (Ctrl-C ends it)"
        )
        active: list[Fault] = []
        started = time.monotonic()
        interrupted = False
        try:
            for moment in moments:
                if await _sleep_or_stop(started + moment.at_s - time.monotonic(), stop):
                    interrupted = True
                    break
                await _play(
                    chaos, moment.what, moment.fault, active, console=console, t=time.monotonic() - started
                )
            else:
                interrupted = await _sleep_or_stop(started + scenario.duration_s - time.monotonic(), stop)
        finally:
            for fault in reversed(active):
                await _play(chaos, "undo", fault, active, console=console, t=time.monotonic() - started)
        console.print("scenario interrupted; its faults are undone" if interrupted else "scenario done")
        return 130 if interrupted else 0


async def _play(
    chaos: WorldChaos, what: str, fault: Fault, active: list[Fault], *, console: Console, t: float
) -> None:
    try:
        if what == "inject":
            message = await chaos.inject(fault)
            if fault.lasting:
                active.append(fault)
        else:
            if fault not in active:
                return
            active.remove(fault)
            message = await chaos.undo(fault) or ""
    except ChaosError as exc:  # one failed step does not end the scenario
        console.print(f"[yellow]{t:7.1f}s  {fault.describe()}: {exc}[/yellow]")
        return
    console.print(f"{t:7.1f}s  {message}")


async def _sleep_or_stop(seconds: float, stop: StopEvent) -> bool:
    """Wait ``seconds``; True when ``stop`` was set first."""
    if seconds > 0:
        try:
            await asyncio.wait_for(stop.wait(), seconds)
        except TimeoutError:
            return False
    return stop.is_set()


def _print_events(directory: Path, last: int, console: Console) -> int:
    for event in read_events(events_path(directory))[-last:]:
        stamp = time.strftime("%H:%M:%S", time.localtime(event.ts))
        console.print(
            f"{stamp}  {event.source:<10} {event.kind:<9} {event.target:<28} {event.message}", markup=False
        )
    return 0
