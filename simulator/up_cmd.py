"""``edgecdn up``: start a whole local world as real child processes and keep it running.

Order matters: the MQTT broker first (the control plane subscribes to it at start), the
control plane (everything else registers with it), the fault relay (the network edge
between nodes and the control plane), then edge nodes, the IoT gateways behind them, and
the router in front; on the way down, the reverse. Once everything is ready, the world's
addresses go to ``.edgecdn/world.json`` for ``edgectl``, ``edgecdn load``, ``status`` and
``chaos``, and a table shows what runs where. A child that dies is restarted on its
ports with back-off (simulator.supervisor); the rest of the world keeps running. Ctrl-C
or SIGTERM stops it all.
"""

from __future__ import annotations

import argparse
import dataclasses
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
from runtime.cli import add_state_dir_flag, fail
from runtime.errors import WorldStateError
from runtime.events import events_path
from runtime.process import StopEvent, serve_until_signalled
from runtime.world_state import STATE_FILE_NAME, EdgeNodeEntry, GatewayEntry, read_world_state
from simulator import world_origin
from simulator.errors import ChildFailedError, SimulatorError, WorldAlreadyRunningError
from simulator.iot_layout import (
    ENGINE_CHOICES,
    BrokerEngine,
    MqttPlan,
    broker_engine,
    broker_spec,
    ensure_mqtt_users,
    gateway_plans,
)
from simulator.layout import (
    FAULT_RELAY_NAME,
    ExtraFlags,
    control_plane_link,
    control_plane_spec,
    edge_node_plans,
    fault_relay_spec,
    node_regions,
    port_of,
    router_spec,
    world_origin_spec,
)
from simulator.restarts import RestartPolicy
from simulator.supervisor import ChildSpec, Supervisor
from simulator.world_app import ensure_default_app, wait_until_nodes_serve
from simulator.world_publish import StartedWorld, WorldStatePublisher
from simulator.world_tokens import WorldTokens, ensure_signing_key, ensure_world_tokens

logger = logging.getLogger(__name__)

PROG = "edgecdn up"
DEFAULT_WORLD = Path("deploy/local/world.toml")
DEFAULT_APP = Path("handlers/geo-hello/app.toml")
WORLD_ENV = "EDGECDN_WORLD"
APP_ENV = "EDGECDN_APP"
MQTT_ENGINE_ENV = "EDGECDN_MQTT_ENGINE"
# Where the world's processes keep compiled modules and components: the state directory's
# compiled/ unless set (the test suite points every world it starts at one directory, so a
# component is compiled once per run, as it is once per machine for `edgecdn up`).
MODULE_CACHE_ENV = "EDGECDN_MODULE_CACHE_DIR"


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
    add_state_dir_flag(parser, what="where world.json, logs and data go")
    parser.add_argument(
        "--mqtt-engine",
        choices=ENGINE_CHOICES,
        default=os.environ.get(MQTT_ENGINE_ENV, "auto"),
        help=f"the world's MQTT broker: Mosquitto when installed (auto), or amqtt [env: {MQTT_ENGINE_ENV}]",
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
            for leftover in ("control-plane", "nodes", "gateways"):
                shutil.rmtree(args.state_dir / leftover, ignore_errors=True)
            (args.state_dir / world_origin.PORT_FILE).unlink(missing_ok=True)
    except (GeoError, SimulatorError) as exc:
        fail(PROG, str(exc))
    outcome: list[int] = []

    async def main(stop: StopEvent) -> None:
        outcome.append(
            await run_world(
                world,
                app=args.app,
                state_directory=args.state_dir,
                stop=stop,
                mqtt_engine=broker_engine(args.mqtt_engine),
            )
        )

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


async def run_world(
    world: World, *, app: Path, state_directory: Path, stop: StopEvent, mqtt_engine: BrokerEngine = "amqtt"
) -> int:
    """Run the world until ``stop`` is set; a child that dies meanwhile is restarted (0), a world
    that cannot start is an error (1)."""
    console = Console(stderr=False)
    state_file = state_directory / STATE_FILE_NAME
    geo_cache_dir = state_directory / "geo"
    # Built once here, so the nodes find it cached instead of each building it at once.
    ensure_world_db(world, geo_cache_dir)
    # Each node's own token, bound to its id and region; the control plane reads the same file.
    tokens = ensure_world_tokens(state_directory / "tokens.json", node_regions(world))
    publisher = WorldStatePublisher(state_file)
    supervisor = Supervisor(
        state_directory / "run",
        policy=RestartPolicy(),
        events=events_path(state_directory),
        on_change=publisher.publish,
    )
    async with supervisor:
        try:
            started = await _start_world(
                world,
                app=app,
                state_directory=state_directory,
                tokens=tokens,
                supervisor=supervisor,
                mqtt_engine=mqtt_engine,
            )
        except SimulatorError as exc:
            Console(stderr=True, soft_wrap=True).print(f"[red]{PROG}: {escape(str(exc))}[/red]")
            return 1
        # world.json carries the role tokens only: a node's own token stays with that node.
        publisher.begin(world=world, supervisor=supervisor, started=started, tokens=dict(tokens.roles))
        try:
            _print_world(console, world, supervisor, state_file)
            await stop.wait()
            console.print("stopping the world ...")
            return 0
        finally:
            publisher.end()
            state_file.unlink(missing_ok=True)
            console.print("world stopped")


async def _start_world(
    world: World,
    *,
    app: Path,
    state_directory: Path,
    tokens: WorldTokens,
    supervisor: Supervisor,
    mqtt_engine: BrokerEngine,
) -> StartedWorld:
    geo_cache_dir = state_directory / "geo"
    module_cache_dir = Path(os.environ.get(MODULE_CACHE_ENV) or state_directory / "compiled")
    # The world signs what it registers, and its nodes and gateways trust only its key.
    signing = ensure_signing_key(state_directory)
    trust = ("--trusted-key", str(signing.public))
    mqtt = await _start_broker(supervisor, state_directory, mqtt_engine)
    control_plane = await supervisor.start(
        control_plane_spec(
            data_dir=state_directory / "control-plane",
            tokens_file=state_directory / "tokens.json",
            module_cache_dir=module_cache_dir,
            world_file=world.source,
            otlp_forward=os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT"),
            extra=mqtt.client_flags("control-plane", env_prefix="CONTROL_PLANE"),
        )
    )
    cp_address = control_plane.report.addresses["grpc"]
    relay = await supervisor.start(
        fault_relay_spec(
            world,
            control_plane=cp_address,
            token=tokens.roles["operator"],
            state_file=state_directory / "run" / "fault-relay-state.json",
        )
    )
    origin = await _start_origin(supervisor, state_directory)
    deployed = await ensure_default_app(
        control_plane=cp_address,
        operator_token=tokens.roles["operator"],
        manifest_path=app,
        sign=signing.key,
        extra_routes=(world_origin.origin_route(origin),),
    )
    if deployed is None:
        Console().print(
            "the control plane has apps already: its deployments stay as they are "
            "(`edgecdn up --fresh` starts from an empty one)"
        )
    # Each region's nodes and gateways reach the control plane through the region's link.
    region_links = {
        region.id: relay.report.addresses[control_plane_link(region.id)]
        for region in world.regions
        if region.edge_nodes
    }
    # The edge answers /_edge/iot from its region's gateways (docs/edge-node.md).
    mqtt_flags = mqtt.client_flags("control-plane", env_prefix="EDGE_NODE")
    plans = edge_node_plans(
        world,
        control_plane=region_links,
        node_tokens=tokens.nodes,
        state_dir=state_directory,
        geo_cache_dir=geo_cache_dir,
        module_cache_dir=module_cache_dir,
        extra=ExtraFlags(argv=(*mqtt_flags.argv, *trust), env=mqtt_flags.env),
    )
    nodes = await supervisor.start_group([plan.spec for plan in plans])
    await wait_until_nodes_serve(
        control_plane=cp_address,
        viewer_token=tokens.roles["viewer"],
        app=deployed,
        node_ids=[plan.node_id for plan in plans],
    )
    gateways = gateway_plans(
        world,
        mqtt=mqtt,
        control_plane={region.id: region_links.get(region.id, cp_address) for region in world.regions},
        gateway_token=tokens.roles["gateway"],
        state_dir=state_directory,
    )
    await supervisor.start_group([_with_argv(plan.spec, trust) for plan in gateways])
    router = await supervisor.start(
        router_spec(
            world,
            control_plane=cp_address,
            router_token=tokens.roles["router"],
            admin_token=tokens.roles["operator"],
            geo_cache_dir=geo_cache_dir,
        )
    )
    return StartedWorld(
        control_plane_address=cp_address,
        router_url=router.report.addresses["http"],
        fault_relay_url=relay.report.addresses["admin"],
        edge_nodes=tuple(
            EdgeNodeEntry(node_id=plan.node_id, region=plan.region, url=node.report.addresses["http"])
            for plan, node in zip(plans, nodes, strict=True)
        ),
        mqtt_url=mqtt.url,
        mqtt_protocol=mqtt.protocol,
        gateways=tuple(
            GatewayEntry(gateway_id=gateway_id, region=plan.region, process=plan.spec.name)
            for plan in gateways
            for gateway_id in plan.gateway_ids
        ),
    )


async def _start_origin(supervisor: Supervisor, state_directory: Path) -> str:
    """The world's origin (the app's /shop/... route), on the port the last run's had."""
    port = world_origin.remembered_port(state_directory)
    try:
        child = await supervisor.start(world_origin_spec(port=port))
    except ChildFailedError as exc:
        if not port:
            raise
        kept_in = state_directory / world_origin.PORT_FILE
        raise SimulatorError(
            f"the world's origin cannot listen on 127.0.0.1:{port}, where the deployed app's "
            f"{world_origin.ROUTE_PATH} route expects it (kept in {kept_in}): "
            f"free the port, or start afresh with `edgecdn up --fresh` ({exc})"
        ) from exc
    url = child.report.addresses["http"]
    world_origin.remember_port(state_directory, port_of(url))
    return url


def _with_argv(spec: ChildSpec, extra: tuple[str, ...]) -> ChildSpec:
    return dataclasses.replace(spec, argv=(*spec.argv, *extra))


async def _start_broker(supervisor: Supervisor, state_directory: Path, engine: BrokerEngine) -> MqttPlan:
    users_file = state_directory / "mqtt.json"
    passwords = ensure_mqtt_users(users_file)
    broker = await supervisor.start(
        broker_spec(users_file=users_file, data_dir=state_directory / "mqtt", engine=engine)
    )
    return MqttPlan(url=broker.report.addresses["mqtt"], engine=engine, passwords=passwords)


def _print_world(console: Console, world: World, supervisor: Supervisor, state_file: Path) -> None:
    title = f"EdgeCDN local world ({len(world.regions)} regions, {len(world.countries)} countries)"
    table = Table(title=title)
    table.add_column("service", no_wrap=True)
    table.add_column("address", no_wrap=True)
    table.add_column("pid", justify="right")
    # The router first: it is the clients' front door, the URL people want.
    children = sorted(supervisor.children, key=lambda child: child.spec.name != "edge-router")
    for child in children:
        addresses = dict(child.report.addresses)
        if child.spec.name == FAULT_RELAY_NAME:  # its admin API, not a column of links
            addresses = {"admin": addresses["admin"], "links": f"{len(addresses) - 1} links"}
        table.add_row(child.spec.name, ", ".join(addresses.values()), str(child.pid))
    console.print(table)
    logs = supervisor.children[0].log_path.parent if supervisor.children else state_file.parent
    console.print(f"world state: {state_file}   logs: {logs}/   stop with Ctrl-C")
    console.print("processes that die are restarted: `edgecdn status`; inject faults: `edgecdn chaos --help`")
