"""``edgecdn world``: inspect the world model, its geo database and its latency model.

    edgecdn world show                     regions and countries as tables
    edgecdn world addr KR                  a loopback source address of a Korean client
    edgecdn world lookup IP [--db PATH]    where an address is, as JSON
    edgecdn world rtt A B                  modeled RTT between places: the path and its parts
    edgecdn world rtt --matrix             region-to-region RTT table
    edgecdn world build-db --out PATH      write the world's MaxMind DB

Every subcommand reads the world file given by --world (env EDGECDN_WORLD). Simulated
clients bind to their country's address, e.g. ``curl --interface "$(edgecdn world addr
KR)" http://127.0.0.1:8080/``, and are located through the world's database.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rich.console import Console
from rich.table import Table

from geo.backbone_paths import BackbonePaths
from geo.database import build_world_db
from geo.errors import GeoError, InvalidValueError
from geo.latency import LatencyModel
from geo.lookup import GeoLocator
from geo.params import LATENCY_MODELS
from geo.places import place_label
from geo.world import MAX_CLIENT_INDEX, World, load_world
from runtime.cli import HelpFormatter, add_flag, fail
from runtime.world_state import state_dir

PROG = "edgecdn world"
DEFAULT_WORLD = Path("deploy/local/world.toml")
WORLD_ENV = "EDGECDN_WORLD"
GEO_CACHE_ENV = "EDGECDN_GEO_CACHE"
GEO_DBS_ENV = "EDGECDN_GEO_DBS"

Handler = Callable[[argparse.Namespace, World], int]
# What argparse's own pattern accepts (-5, -.5), plus a coordinate pair "-33.87,151.21".
_NEGATIVE_COORDINATE = re.compile(r"^-\d+$|^-\d*\.\d+$|^-\d*\.?\d*\s*,")


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "world",
        help="inspect the world: regions, countries, addresses, lookups, RTTs",
        description=__doc__,
        formatter_class=HelpFormatter,
    )
    commands = parser.add_subparsers(dest="world_command", metavar="SUBCOMMAND", required=True)

    show = _subcommand(commands, "show", "regions and countries as tables", _show)
    show.add_argument("--json", action="store_true", help="print the world as JSON instead")

    addr = _subcommand(commands, "addr", "print a loopback source address of a simulated client", _addr)
    addr.add_argument("country", metavar="CC", help="country code, e.g. KR")
    addr.add_argument(
        "--index",
        type=int,
        default=1,
        help=f"which address of the country's block, 1 to {MAX_CLIENT_INDEX} (default: %(default)s)",
    )

    lookup = _subcommand(commands, "lookup", "locate an IP address; print the location as JSON", _lookup)
    lookup.add_argument("ip", metavar="IP", help="IPv4 or IPv6 address")
    add_flag(
        lookup,
        "--db",
        env=GEO_DBS_ENV,
        default=[],
        convert=Path,
        repeated=True,
        metavar="PATH",
        help="a GeoIP2/GeoLite2 City or Country database asked after the world's; repeatable",
    )
    add_flag(
        lookup,
        "--cache-dir",
        env=GEO_CACHE_ENV,
        default=state_dir() / "geo",
        convert=Path,
        metavar="DIR",
        help="where the world's database is built and reused (default: %(default)s)",
    )

    rtt = _subcommand(
        commands, "rtt", "modeled round-trip time: the path, its parts, or the region matrix", _rtt
    )
    rtt.add_argument(
        "places",
        nargs="*",
        metavar="PLACE",
        help="two places: country code, region id, city, country name, or LAT,LON (e.g. -33.87,151.21)",
    )
    rtt.add_argument("--matrix", action="store_true", help="print the region-to-region RTT table instead")
    rtt.add_argument(
        "--model",
        choices=LATENCY_MODELS,
        default=None,
        help="the latency model to use (default: the world file's [latency] model)",
    )
    rtt.add_argument(
        "--cut",
        action="append",
        default=[],
        metavar="HUB,HUB",
        help="cut the backbone link between two hubs (a cable cut) and route around it; repeatable",
    )
    # Coordinates south or west start with '-': argparse would take "-33.87,151.21" for an
    # option. No option of this command looks like a number, so treat such words as values.
    rtt._negative_number_matcher = _NEGATIVE_COORDINATE

    build = _subcommand(commands, "build-db", "write the world's MaxMind DB", _build_db)
    build.add_argument("--out", type=Path, required=True, metavar="PATH", help="the database file to write")


def _subcommand(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], name: str, summary: str, handler: Handler
) -> argparse.ArgumentParser:
    parser = commands.add_parser(name, help=summary, description=summary, formatter_class=HelpFormatter)
    add_flag(
        parser,
        "--world",
        env=WORLD_ENV,
        default=DEFAULT_WORLD,
        convert=Path,
        metavar="PATH",
        help="world file (TOML) (default: %(default)s)",
    )
    prog = f"{PROG} {name}"

    def run(args: argparse.Namespace) -> int:
        try:
            return handler(args, load_world(args.world))
        except GeoError as exc:
            fail(prog, str(exc))

    parser.set_defaults(handler=run)
    return parser


def _out(text: str) -> None:
    """Plain output for scripts (addresses, JSON): no styling, no wrapping."""
    sys.stdout.write(text + "\n")


def _console() -> Console:
    # A pipe has no width; rich would assume 80 columns and fold region ids mid-word.
    return Console(width=None if sys.stdout.isatty() else 200)


def _show(args: argparse.Namespace, world: World) -> int:
    if args.json:
        _out(json.dumps(_world_dict(world), indent=2, ensure_ascii=False))
        return 0
    console = _console()
    p = world.latency
    if p.model == "backbone":
        paths = LatencyModel(world).paths
        assert paths is not None
        backbone = paths.backbone
        size = f"{len(backbone.hubs)} hubs, {len(backbone.links)} links"
        formula = f"RTT over the backbone {backbone.source} ({size})"
    else:
        formula = (
            f"RTT = {p.per_hop_base_ms:g} ms + 2 x km / {p.fiber_km_per_ms:g} km/ms x {p.path_inflation:g}"
        )
    console.print(
        f"world {world.source} (sha256 {world.digest[:12]}), seed {world.seed}; "
        f"{formula}, jitter ±{p.jitter_ms:g} ms"
    )
    regions = Table(title=f"{len(world.regions)} regions")
    for column in ("region", "PoP", "latitude", "longitude", "edge nodes", "gateways", "serves"):
        regions.add_column(column, no_wrap=column != "serves")
    for r in world.regions:
        regions.add_row(
            r.id,
            r.pop,
            f"{r.latitude:g}",
            f"{r.longitude:g}",
            str(r.edge_nodes),
            str(r.gateways),
            " ".join(r.serves),
        )
    console.print(regions)
    countries = Table(title=f"{len(world.countries)} countries")
    for column in (
        "code",
        "country",
        "continent",
        "city",
        "latitude",
        "longitude",
        "loopback",
        "home region",
    ):
        countries.add_column(column, no_wrap=True)
    countries.add_column("real networks")
    for c in world.countries:
        home = world.home_region(c.code)
        countries.add_row(
            c.code,
            c.name,
            c.continent,
            c.city,
            f"{c.latitude:g}",
            f"{c.longitude:g}",
            str(c.loopback),
            home.id if home else "-",
            " ".join(str(n) for n in c.cidrs),
        )
    console.print(countries)
    return 0


def _world_dict(world: World) -> dict[str, object]:
    p = world.latency
    return {
        "source": str(world.source),
        "sha256": world.digest,
        "seed": world.seed,
        "latency": {
            "model": p.model,
            "backbone": None if p.backbone is None else str(p.backbone),
            "fiber_km_per_ms": p.fiber_km_per_ms,
            "path_inflation": p.path_inflation,
            "per_hop_base_ms": p.per_hop_base_ms,
            "jitter_ms": p.jitter_ms,
        },
        "regions": [
            {
                "id": r.id,
                "pop": r.pop,
                "latitude": r.latitude,
                "longitude": r.longitude,
                "edge_nodes": r.edge_nodes,
                "gateways": r.gateways,
                "serves": list(r.serves),
            }
            for r in world.regions
        ],
        "countries": [
            {
                "code": c.code,
                "name": c.name,
                "continent": c.continent,
                "city": c.city,
                "latitude": c.latitude,
                "longitude": c.longitude,
                "loopback": str(c.loopback),
                "cidrs": [str(n) for n in c.cidrs],
                "registered_country": c.registered_country or c.code,
            }
            for c in world.countries
        ],
    }


def _addr(args: argparse.Namespace, world: World) -> int:
    _out(world.country(args.country).client_address(args.index))
    return 0


def _lookup(args: argparse.Namespace, world: World) -> int:
    with GeoLocator.for_world(
        world, cache_dir=args.cache_dir, extra_databases=args.db, cache_size=0
    ) as locator:
        location = locator.locate(args.ip)
    _out(json.dumps({"ip": args.ip, **location.as_dict()}, indent=2, ensure_ascii=False))
    return 0


def _rtt(args: argparse.Namespace, world: World) -> int:
    model = _latency_model(args, world)
    if args.matrix:
        if args.places:
            raise InvalidValueError(field="--matrix", reason="takes no places: it prints every region pair")
        _out(_matrix(model, world))
        return 0
    if len(args.places) != 2:
        raise InvalidValueError(
            field="PLACE", reason=f"give two places, like KR ap-northeast-1 (got {len(args.places)})"
        )
    a, b = model.place(args.places[0]), model.place(args.places[1])
    distance = model.distance_km(a, b)
    route = model.route(a, b)
    if route is None:
        _out(
            f"{place_label(a)} -> {place_label(b)}: {distance:,.0f} km, "
            f"modeled RTT {model.rtt_for_distance_ms(distance):.1f} ms (great-circle model)"
        )
        return 0
    lines = [
        (
            f"{place_label(a)} -> {place_label(b)}: {distance:,.0f} km, modeled RTT {route.rtt_ms:.1f} ms "
            f"(backbone model, {route.km:,.0f} km of fiber)"
        ),
        "  path:     " + (" > ".join(hub.city for hub in route.hubs) or "none: the backbone is cut in two"),
        f"  base      {route.base_ms:6.1f} ms",
        (
            f"  access    {route.access_ms:6.1f} ms  ({route.access_km[0]:,.0f} km to the first hub, "
            f"{route.access_km[1]:,.0f} km from the last)"
        ),
        f"  backbone  {route.backbone_ms:6.1f} ms  ({route.backbone_km:,.0f} km between hubs)",
        f"  hubs      {route.hops_ms:6.1f} ms  ({len(route.hubs)} passed)",
    ]
    _out("\n".join(lines))
    return 0


def _latency_model(args: argparse.Namespace, world: World) -> LatencyModel:
    params = world.latency if args.model is None else dataclasses.replace(world.latency, model=args.model)
    if not args.cut:
        return LatencyModel(world, params)
    if params.model != "backbone":
        raise InvalidValueError(field="--cut", reason="cuts a backbone link; the great-circle model has none")
    paths = LatencyModel(world, params).paths
    assert paths is not None  # the backbone model always has paths
    backbone = paths.backbone
    cut: set[frozenset[str]] = set()
    for text in args.cut:
        ends = frozenset(part.strip() for part in text.split(","))
        if len(ends) != 2 or not any(frozenset((link.a, link.b)) == ends for link in backbone.links):
            raise InvalidValueError(
                field="--cut",
                reason=f"{text!r} is not a link of {backbone.source}: give HUB,HUB like london,new-york",
            )
        cut.add(ends)
    return LatencyModel(world, params, paths=BackbonePaths(backbone.without_links(frozenset(cut))))


def _matrix(model: LatencyModel, world: World) -> str:
    """Region-to-region RTTs as a fixed-width table (ms), rows and columns in world order."""
    ids = [region.id for region in world.regions]
    width = max(8, *(len(i) for i in ids)) + 1
    header = " " * width + "".join(f"{i:>{width}}" for i in ids)
    rows = [header]
    for row in world.regions:
        cells = "".join(f"{model.rtt_ms(row, column):>{width}.1f}" for column in world.regions)
        rows.append(f"{row.id:<{width}}{cells}")
    return "\n".join(rows)


def _build_db(args: argparse.Namespace, world: World) -> int:
    started = time.perf_counter()
    path = build_world_db(world, args.out)
    elapsed_ms = (time.perf_counter() - started) * 1000
    _out(
        f"{path}: {len(world.countries)} countries, {path.stat().st_size:,} bytes, "
        f"built in {elapsed_ms:.0f} ms (sha256 of the world: {world.digest[:12]})"
    )
    return 0
