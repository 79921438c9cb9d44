"""``edgecdn up``: start a whole local world as real child processes and keep it running.

Order matters: the control plane first (everything else registers with it), then edge
nodes, then the router in front; on the way down, the reverse. Once everything is
ready, the world's addresses go to ``.edgecdn/world.json`` for ``edgectl`` and
``edgecdn load``, and a table shows what runs where. Ctrl-C or SIGTERM stops it all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shutil
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from geo.database import ensure_world_db
from geo.errors import GeoError
from geo.world import World, load_world
from runtime.cli import fail
from runtime.errors import WorldStateError
from runtime.process import StopEvent, serve_until_signalled
from runtime.world_state import (
    STATE_FILE_NAME,
    EdgeNodeEntry,
    ProcessEntry,
    WorldState,
    read_world_state,
    state_dir,
    write_world_state,
)
from simulator.errors import SimulatorError, WorldAlreadyRunningError
from simulator.layout import control_plane_spec, edge_node_plans, router_spec
from simulator.supervisor import Supervisor
from simulator.world_app import ensure_tokens, publish_and_deploy, wait_until_nodes_serve

logger = logging.getLogger(__name__)

PROG = "edgecdn up"
DEFAULT_WORLD = Path("deploy/local/world.toml")
DEFAULT_APP = Path("handlers/geo-hello/app.toml")
WORLD_ENV = "EDGECDN_WORLD"
APP_ENV = "EDGECDN_APP"


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "up",
        help="start a whole local world (control plane, edge nodes, router, gateways)",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--world",
        type=Path,
        default=Path(os.environ.get(WORLD_ENV, DEFAULT_WORLD)),
        help=f"world file (TOML) [env: {WORLD_ENV}] (default: %(default)s)",
    )
    parser.add_argument(
        "--app",
        type=Path,
        default=Path(os.environ.get(APP_ENV, DEFAULT_APP)),
        help=f"app manifest every edge node serves [env: {APP_ENV}] (default: %(default)s)",
    )
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=state_dir(),
        help="where world.json, logs and data go [env: EDGECDN_STATE_DIR] (default: %(default)s)",
    )
    parser.add_argument(
        "--fresh",
        action="store_true",
        help="forget the previous world's control-plane state and node data before starting",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        world = load_world(args.world)
        if not args.app.is_file():
            raise SimulatorError(f"--app: no app manifest at {args.app}")
        _refuse_if_running(args.state_dir / STATE_FILE_NAME)
        if args.fresh:
            for leftover in ("control-plane", "nodes"):
                shutil.rmtree(args.state_dir / leftover, ignore_errors=True)
    except (GeoError, SimulatorError) as exc:
        fail(PROG, str(exc))
    outcome: list[int] = []

    async def main(stop: StopEvent) -> None:
        outcome.append(await run_world(world, app=args.app, state_directory=args.state_dir, stop=stop))

    serve_until_signalled(main)
    return outcome[0] if outcome else 130


def _refuse_if_running(state_file: Path) -> None:
    try:
        state = read_world_state(state_file)
    except WorldStateError:
        return  # none, or unreadable: nothing of ours is running from it
    if _pid_alive(state.supervisor_pid):
        raise WorldAlreadyRunningError(pid=state.supervisor_pid, state_file=str(state_file))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


async def run_world(world: World, *, app: Path, state_directory: Path, stop: StopEvent) -> int:
    """Run the world until ``stop`` is set (0) or one of its processes dies (1)."""
    console = Console(stderr=False)
    state_file = state_directory / STATE_FILE_NAME
    geo_cache_dir = state_directory / "geo"
    # Built once here, so the nodes find it cached instead of each building it at once.
    ensure_world_db(world, geo_cache_dir)
    tokens = ensure_tokens(state_directory / "tokens.json")
    async with Supervisor(state_directory / "run") as supervisor:
        try:
            control_plane = await supervisor.start(
                control_plane_spec(
                    data_dir=state_directory / "control-plane",
                    tokens_file=state_directory / "tokens.json",
                    otlp_forward=os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
                )
            )
            cp_address = control_plane.report.addresses["grpc"]
            deployed = await publish_and_deploy(
                control_plane=cp_address, operator_token=tokens["operator"], manifest_path=app
            )
            plans = edge_node_plans(
                world,
                control_plane=cp_address,
                node_token=tokens["node"],
                state_dir=state_directory,
                geo_cache_dir=geo_cache_dir,
            )
            nodes = await supervisor.start_group([plan.spec for plan in plans])
            await wait_until_nodes_serve(
                control_plane=cp_address,
                viewer_token=tokens["viewer"],
                app=deployed,
                node_ids=[plan.node_id for plan in plans],
            )
            router = await supervisor.start(
                router_spec(
                    world, control_plane=cp_address, node_token=tokens["node"], geo_cache_dir=geo_cache_dir
                )
            )
        except SimulatorError as exc:
            Console(stderr=True, soft_wrap=True).print(f"[red]{PROG}: {escape(str(exc))}[/red]")
            return 1
        state = WorldState(
            world_file=str(world.source),
            supervisor_pid=os.getpid(),
            control_plane_address=cp_address,
            router_url=router.report.addresses["http"],
            edge_nodes=tuple(
                EdgeNodeEntry(node_id=plan.node_id, region=plan.region, url=node.report.addresses["http"])
                for plan, node in zip(plans, nodes, strict=True)
            ),
            tokens=tokens,
            processes=tuple(
                ProcessEntry(name=c.spec.name, pid=c.pid, log=str(c.log_path)) for c in supervisor.children
            ),
        )
        write_world_state(state_file, state)
        try:
            _print_world(console, world, supervisor, state_file)
            return await _wait_until_stopped_or_broken(supervisor, stop, console)
        finally:
            state_file.unlink(missing_ok=True)
            console.print("world stopped")


async def _wait_until_stopped_or_broken(supervisor: Supervisor, stop: StopEvent, console: Console) -> int:
    stop_task = asyncio.create_task(stop.wait(), name="wait-stop")
    exit_task = asyncio.create_task(supervisor.wait_any_exit(), name="wait-child-exit")
    try:
        await asyncio.wait({stop_task, exit_task}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (stop_task, exit_task):
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    if exit_task.done() and not exit_task.cancelled() and exit_task.exception() is None:
        dead = exit_task.result()
        console.print(
            f"[red]{PROG}: {dead.spec.name} exited with status {dead.process.returncode}; "
            f"stopping the world (log: {dead.log_path})[/red]"
        )
        return 1
    console.print("stopping the world ...")
    return 0


def _print_world(console: Console, world: World, supervisor: Supervisor, state_file: Path) -> None:
    title = f"EdgeCDN local world ({len(world.regions)} regions, {len(world.countries)} countries)"
    table = Table(title=title)
    table.add_column("service", no_wrap=True)
    table.add_column("address", no_wrap=True)
    table.add_column("pid", justify="right")
    # The router first: it is the clients' front door, the URL people want.
    children = sorted(supervisor.children, key=lambda child: child.spec.name != "edge-router")
    for child in children:
        table.add_row(child.spec.name, ", ".join(child.report.addresses.values()), str(child.pid))
    console.print(table)
    logs = supervisor.children[0].log_path.parent if supervisor.children else state_file.parent
    console.print(f"world state: {state_file}   logs: {logs}/   stop with Ctrl-C")
