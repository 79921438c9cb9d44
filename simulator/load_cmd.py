"""``edgecdn load``: simulated clients from many countries against the world (or any URL).

    edgecdn load --mix KR=10,US=40,DE=50 --rate 2000 --duration 30s
    edgecdn load --countries KR,JP --concurrency 50 --target http://127.0.0.1:8080
    edgecdn load --scenario peak.toml --out report.json --html report.html --workers 2

Open loop (--rate) sends at the intended times whatever the answers, and measures
latency from those times (no coordinated omission); closed loop (--concurrency) keeps
that many users busy. Each client's socket leaves from its country's loopback address,
so the edge geolocates it. Ctrl-C stops early and still prints and writes the report.
The world's faults and restarts during the run (its events file, written by `edgecdn
chaos` and the supervisor) are listed and marked on the report's charts.
The format of scenario files and reports: docs/load.md.
"""

from __future__ import annotations

import argparse
import datetime
import sys
import time
from pathlib import Path

from rich.console import Console

from geo.errors import GeoError
from geo.world import World, load_world
from runtime.cli import HelpFormatter, add_flag, fail, split_csv
from runtime.errors import WorldStateError
from runtime.events import events_path
from runtime.world_state import read_world_state
from simulator.load.client import RequestSpec
from simulator.load.config import LoadConfig, check_reachable, engine_config, resolve_target
from simulator.load.engine import EngineConfig
from simulator.load.errors import BadInputError, EventsUnreadableError, LoadError, NoTargetError
from simulator.load.events import EventTail, run_events
from simulator.load.html import write_html
from simulator.load.plan import (
    ARRIVALS,
    Mix,
    Phase,
    Plan,
    equal_mix,
    load_scenario,
    parse_duration,
    parse_mix,
)
from simulator.load.progress import Progress
from simulator.load.report import build_report, print_tables, run_meta, write_json
from simulator.load.workers import run_workers

PROG = "edgecdn load"
DEFAULT_WORLD = Path("deploy/local/world.toml")
ENV = "EDGECDN_LOAD_"


class _FlagValueError(argparse.ArgumentTypeError, ValueError):
    """A flag's value is wrong: argparse shows the message as it is, and so does add_flag for
    an environment variable (it catches ValueError)."""


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _FlagValueError(f"{text!r} is not a number") from None
    if not value > 0 or value == float("inf"):
        raise _FlagValueError(f"must be a positive number (got {text})")
    return value


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise _FlagValueError(f"{text!r} is not a whole number") from None


def _positive_int(text: str) -> int:
    value = _integer(text)
    if value < 1:
        raise _FlagValueError(f"must be at least 1 (got {text})")
    return value


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser(
        "load", help="generate load from simulated countries; report latency per country and region",
        description=__doc__, formatter_class=HelpFormatter,
    )  # fmt: skip
    flag = parser.add_argument_group("target and traffic")
    add_flag(
        flag,
        "--target",
        env=f"{ENV}TARGET",
        default=None,
        metavar="URL",
        help="base URL to load (default: the running world's router, from .edgecdn/world.json)",
    )
    add_flag(
        flag,
        "--world",
        env="EDGECDN_WORLD",
        default=DEFAULT_WORLD,
        convert=Path,
        metavar="PATH",
        help="world file: the countries and their loopback blocks",
    )
    add_flag(
        flag,
        "--mix",
        env=f"{ENV}MIX",
        default=None,
        metavar="CC=SHARE,...",
        help="shares of traffic by country, e.g. KR=10,US=40,DE=50 (default: every country alike)",
    )
    add_flag(
        flag,
        "--countries",
        env=f"{ENV}COUNTRIES",
        default=None,
        metavar="CC,...",
        help="countries sharing the traffic equally, e.g. KR,JP",
    )
    add_flag(
        flag,
        "--rate",
        env=f"{ENV}RATE",
        default=None,
        convert=_positive_float,
        metavar="R",
        help="open loop: requests per second, whatever the answers (default: 100 unless --concurrency)",
    )
    add_flag(
        flag,
        "--concurrency",
        env=f"{ENV}CONCURRENCY",
        default=None,
        convert=_positive_int,
        metavar="C",
        help="closed loop: users, each sending its next request when answered",
    )
    add_flag(
        flag,
        "--arrival",
        env=f"{ENV}ARRIVAL",
        default="constant",
        choices=list(ARRIVALS),
        help="open-loop arrivals: evenly spaced, or a Poisson process",
    )
    add_flag(
        flag,
        "--duration",
        env=f"{ENV}DURATION",
        default="10s",
        metavar="TIME",
        help="how long to run, e.g. 30s, 2m",
    )
    add_flag(
        flag,
        "--scenario",
        env=f"{ENV}SCENARIO",
        default=None,
        convert=Path,
        metavar="FILE.toml",
        help="phases (ramp, steady, spike) with their own rates and mixes; replaces --rate, --concurrency, "
        "--duration, --mix, --countries, --arrival",
    )
    req = parser.add_argument_group("request")
    add_flag(
        req, "--path", env=f"{ENV}PATH", default="/hello", help="request path (after the target's own path)"
    )
    add_flag(req, "--method", env=f"{ENV}METHOD", default="GET", help="request method")
    add_flag(
        req,
        "--header",
        env=f"{ENV}HEADERS",
        default=[],
        repeated=True,
        metavar="'NAME: VALUE'",
        help="extra request header; repeatable",
    )
    add_flag(
        req, "--body", env=f"{ENV}BODY", default=None, metavar="TEXT|@FILE", help="request body, or @FILE"
    )
    add_flag(
        req,
        "--expect-body",
        env=f"{ENV}EXPECT_BODY",
        default=None,
        metavar="TEXT",
        help="answers must contain TEXT ({country} stands for the client's country code, e.g. "
        "'\"country\":\"{country}\"'); others count as 'check' errors",
    )
    run = parser.add_argument_group("engine and reports")
    add_flag(
        run,
        "--connections",
        env=f"{ENV}CONNECTIONS",
        default=64,
        convert=_positive_int,
        metavar="N",
        help="open loop: keep-alive connections in all, split by country share",
    )
    add_flag(
        run,
        "--timeout",
        env=f"{ENV}TIMEOUT",
        default="10s",
        metavar="TIME",
        help="a request not answered this long after it was due fails as a timeout",
    )
    add_flag(
        run,
        "--workers",
        env=f"{ENV}WORKERS",
        default=1,
        convert=_positive_int,
        metavar="N",
        help="processes generating load; their histograms are merged exactly",
    )
    add_flag(run, "--seed", env=f"{ENV}SEED", default=1, convert=_integer, help="seed of Poisson arrivals")
    add_flag(
        run,
        "--out",
        env=f"{ENV}OUT",
        default=None,
        convert=Path,
        metavar="report.json",
        help="write every figure, histograms included, as JSON",
    )
    add_flag(
        run,
        "--html",
        env=f"{ENV}HTML",
        default=None,
        convert=Path,
        metavar="report.html",
        help="write a self-contained HTML page with charts",
    )
    add_flag(
        run,
        "--events",
        env="EDGECDN_EVENTS",
        default=events_path(),
        convert=Path,
        metavar="PATH",
        help="the world's events file (faults, exits, restarts): those during the run are listed and "
        "marked on the charts; the default is in the state directory ($EDGECDN_STATE_DIR)",
    )
    parser.set_defaults(handler=_handle)


def _handle(args: argparse.Namespace) -> int:
    try:
        world = load_world(args.world)
        config = build_config(args, world)
        engine = engine_config(config, world)
        check_reachable(config.target, engine.addresses[config.plan.countries()[0]][0])
        return execute(config, engine)
    except (LoadError, GeoError, WorldStateError) as exc:
        fail(PROG, str(exc))


def build_config(args: argparse.Namespace, world: World) -> LoadConfig:
    """Flags -> the run's config; every mistake becomes a BadInputError naming its flag."""
    target_url = args.target
    if target_url is None:
        try:
            state = read_world_state()
        except WorldStateError as exc:
            raise NoTargetError(reason=str(exc)) from exc
        if state.router_url is None:
            raise NoTargetError(reason="the running world has no router yet")
        target_url = state.router_url
    target = resolve_target(target_url)
    plan = _plan(args)
    known = {c.code for c in world.countries}
    unknown = [code for code in plan.countries() if code not in known]
    if unknown:
        raise BadInputError(
            field="countries",
            reason=f"unknown {', '.join(unknown)}; the world ({args.world}) has {' '.join(sorted(known))}",
        )
    return LoadConfig(
        target=target,
        plan=plan,
        request=_request(args, target.request_path(args.path)),
        connections=args.connections,
        timeout_s=parse_duration(args.timeout, field_name="--timeout"),
        workers=args.workers,
        seed=args.seed,
        expect_body=args.expect_body,
        out=args.out,
        html=args.html,
        events=args.events,
    )


def _plan(args: argparse.Namespace) -> Plan:
    if args.scenario is not None:
        given = [f for f in ("rate", "concurrency", "mix", "countries") if getattr(args, f) is not None]
        if given:
            raise BadInputError(
                field="--scenario", reason=f"the scenario sets the traffic; drop --{given[0]}"
            )
        return load_scenario(args.scenario)
    if args.mix is not None and args.countries is not None:
        raise BadInputError(field="--mix", reason="give --mix or --countries, not both")
    if args.rate is not None and args.concurrency is not None:
        raise BadInputError(
            field="--rate", reason="give --rate (open loop) or --concurrency (closed loop), not both"
        )
    mix: Mix | None = None
    if args.mix is not None:
        mix = parse_mix(args.mix)
    elif args.countries is not None:
        mix = equal_mix(split_csv([args.countries]))
    duration = parse_duration(args.duration, field_name="--duration")
    phase_mix = mix if mix is not None else _all_countries(args.world)
    if args.concurrency is not None:
        phase = Phase(
            name="steady", kind="steady", duration_s=duration, mix=phase_mix, concurrency=args.concurrency
        )
    else:
        rate = args.rate if args.rate is not None else 100.0
        phase = Phase(name="steady", kind="steady", duration_s=duration, mix=phase_mix, rate_start=rate)
    return Plan(phases=(phase,), arrival=args.arrival)


def _all_countries(world_file: Path) -> Mix:
    return equal_mix(tuple(c.code for c in load_world(world_file).countries))


def _request(args: argparse.Namespace, path: str) -> RequestSpec:
    headers: list[tuple[str, str]] = []
    for raw in args.header:
        name, sep, value = raw.partition(":")
        if (
            not sep
            or not name.strip()
            or any(ch in name for ch in " \t\r\n")
            or any(ch in value for ch in "\r\n")
        ):
            raise BadInputError(field="--header", reason=f"{raw!r} is not 'Name: value'")
        headers.append((name.strip(), value.strip()))
    body = b""
    if args.body is not None:
        if args.body.startswith("@"):
            try:
                body = Path(args.body[1:]).read_bytes()
            except OSError as exc:
                raise BadInputError(
                    field="--body", reason=f"cannot read {args.body[1:]}: {exc.strerror}"
                ) from exc
        else:
            body = args.body.encode()
    method = args.method.upper()
    if not method.isalpha():
        raise BadInputError(field="--method", reason=f"{args.method!r} is not an HTTP method")
    if not path.startswith("/") or any(ch in path for ch in " \r\n"):
        raise BadInputError(field="--path", reason=f"{path!r} must start with / and contain no spaces")
    return RequestSpec(method=method, path=path, headers=tuple(headers), body=body)


def execute(config: LoadConfig, engine: EngineConfig) -> int:
    """Run, then print the tables and write the reports (also after Ctrl-C)."""
    err = Console(stderr=True)
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    started = time.monotonic()
    started_ts = time.time()  # the events file is stamped with the wall clock, not monotonic time
    tail = None if config.events is None else EventTail(config.events, since_ts=started_ts)
    with Progress(err, duration_s=config.plan.duration_s, workers=config.workers, events=tail) as progress:
        result = run_workers(engine, config.workers, progress.tick)
    wall, ended_ts = time.monotonic() - started, time.time()
    elapsed = min(wall, config.plan.duration_s) if result.interrupted else config.plan.duration_s
    # the timeline's second 0 is when the engine started sending, after spawning and warming up
    origin_ts = result.recorder.started_ts or started_ts
    try:
        events = run_events(config.events, origin_ts=origin_ts, end_ts=ended_ts)
    except EventsUnreadableError as exc:
        events = []
        err.print(f"{PROG}: warning: {exc}", highlight=False, markup=False, soft_wrap=True)
    meta = run_meta(
        config,
        started_at,
        elapsed,
        interrupted=result.interrupted,
        workers_lost=result.workers_lost,
        started_ts=origin_ts,
    )
    report = build_report(result.recorder, meta, events)
    print_tables(report, Console(width=None if sys.stdout.isatty() else 200))
    if config.out is not None:
        write_json(report, config.out)
        err.print(f"wrote {config.out}", highlight=False)
    if config.html is not None:
        write_html(report, config.html)
        err.print(f"wrote {config.html}", highlight=False)
    return 130 if result.interrupted else 0
