"""``edge-router`` / ``python -m router``: the geo front door's entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from geo.errors import GeoError
from geo.forwarding import parse_networks
from httpfront.server import ClientTimeouts
from router.config import RouterConfig
from router.errors import RouterError
from router.health import HealthSettings
from router.server import SERVICE_NAME, run
from runtime.cli import add_flag, add_logging_flags, configure_logging, fail, new_parser
from runtime.errors import ConfigError
from runtime.process import serve_until_signalled
from runtime.ready import ready_file_reporter
from runtime.tls import add_control_plane_tls_flags, control_plane_tls_from_args
from tracing.errors import TracingError

PROG = "edge-router"
DEFAULT_WORLD = Path("deploy/local/world.toml")


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        PROG,
        "The EdgeCDN router: sends every client to the best healthy edge region (anycast/GeoDNS\n"
        "emulation) and emulates the wide-area network's latency.",
    )
    add_flag(parser, "--world", env="EDGECDN_WORLD", default=DEFAULT_WORLD, convert=Path, help="world file")
    add_flag(parser, "--host", env="EDGE_ROUTER_HOST", default="127.0.0.1", help="address to listen on")
    add_flag(parser, "--port", env="EDGE_ROUTER_PORT", default=0, convert=int, help="port (0: any free)")
    add_flag(parser, "--router-id", env="EDGE_ROUTER_ID", default="router", help="this router's name")
    inventory = parser.add_argument_group("edge inventory (exactly one source)")
    add_flag(
        inventory,
        "--edge",
        env="EDGE_ROUTER_EDGES",
        default=[],
        repeated=True,
        metavar="REGION[/NODE_ID]=URL",
        help="an edge node (repeatable); node ids default to REGION-a, REGION-b, ...",
    )
    add_flag(
        inventory,
        "--edges-file",
        env="EDGE_ROUTER_EDGES_FILE",
        default=None,
        convert=Path,
        help="JSON with edge_nodes: [{node_id, region, url}] (world.json's shape), re-read when it changes",
    )
    add_flag(
        inventory,
        "--control-plane",
        env="EDGE_ROUTER_CONTROL_PLANE",
        default=None,
        help="control plane gRPC address: follow its live node inventory (and send spans there)",
    )
    add_flag(
        inventory,
        "--token",
        env="EDGE_ROUTER_TOKEN",
        default="",
        help="bearer token of the router role (a fleet-wide node token works too)",
    )
    add_control_plane_tls_flags(parser, env_prefix="EDGE_ROUTER")
    add_flag(
        parser, "--admin-port", env="EDGE_ROUTER_ADMIN_PORT", default=None, convert=int,
        help="serve /metrics and /_router/... on this port (0: any free) instead of --port, which then "
        "keeps only /healthz: what a public load balancer may reach",
    )  # fmt: skip
    add_flag(
        parser,
        "--wan",
        env="EDGE_ROUTER_WAN",
        default="model",
        choices=["model", "off"],
        help="delay requests and responses by the modeled one-way latency client <-> PoP",
    )
    add_flag(
        parser,
        "--admin-token",
        env="EDGE_ROUTER_ADMIN_TOKEN",
        default="",
        help="bearer token of the WAN fault-injection endpoints (/_router/faults); empty: they are disabled",
    )
    add_flag(
        parser,
        "--trusted-proxy",
        env="EDGE_ROUTER_TRUSTED_PROXIES",
        default=[],
        repeated=True,
        metavar="CIDR",
        help="peers whose X-Forwarded-For/Forwarded and geo headers are believed (repeatable)",
    )
    add_flag(
        parser,
        "--geo-db",
        env="EDGE_ROUTER_GEO_DBS",
        default=[],
        repeated=True,
        convert=Path,
        metavar="PATH",
        help="extra GeoIP2/GeoLite2 database consulted after the world's own (repeatable)",
    )
    add_flag(
        parser,
        "--geo-cache-dir",
        env="EDGE_ROUTER_GEO_CACHE_DIR",
        default=Path(".edgecdn/geo"),
        convert=Path,
        help="where the world's geo database is built or found",
    )
    health = parser.add_argument_group("health")
    defaults = HealthSettings()
    add_flag(
        health,
        "--health-interval",
        env="EDGE_ROUTER_HEALTH_INTERVAL",
        default=defaults.interval_s,
        convert=float,
        help="seconds between active /healthz checks of every node",
    )
    add_flag(
        health,
        "--health-timeout",
        env="EDGE_ROUTER_HEALTH_TIMEOUT",
        default=defaults.timeout_s,
        convert=float,
        help="seconds a /healthz check may take",
    )
    add_flag(
        health,
        "--unhealthy-after",
        env="EDGE_ROUTER_UNHEALTHY_AFTER",
        default=defaults.unhealthy_after,
        convert=int,
        help="consecutive failed checks that mark a node down",
    )
    add_flag(
        health,
        "--healthy-after",
        env="EDGE_ROUTER_HEALTHY_AFTER",
        default=defaults.healthy_after,
        convert=int,
        help="consecutive passed checks that bring a down node back",
    )
    add_flag(
        health,
        "--eject-after-5xx",
        env="EDGE_ROUTER_EJECT_AFTER_5XX",
        default=defaults.eject_after_5xx,
        convert=int,
        help="consecutive 5xx answers that eject a node",
    )
    add_flag(
        health,
        "--ejection",
        env="EDGE_ROUTER_EJECTION",
        default=defaults.base_ejection_s,
        convert=float,
        help="seconds a first ejection lasts (times the ejections in a row)",
    )
    add_flag(
        health,
        "--max-ejection",
        env="EDGE_ROUTER_MAX_EJECTION",
        default=defaults.max_ejection_s,
        convert=float,
        help="longest ejection, seconds",
    )
    client_defaults = ClientTimeouts()
    add_flag(
        parser,
        "--client-timeout",
        env="EDGE_ROUTER_CLIENT_TIMEOUT",
        default=client_defaults.head_s,
        convert=float,
        help="seconds a client may take to send a request head, or between bytes of a body (408 / closed)",
    )
    add_flag(
        parser,
        "--keepalive-timeout",
        env="EDGE_ROUTER_KEEPALIVE_TIMEOUT",
        default=client_defaults.idle_s,
        convert=float,
        help="seconds an idle kept-alive client connection stays open",
    )
    add_flag(
        parser,
        "--upstream-timeout",
        env="EDGE_ROUTER_UPSTREAM_TIMEOUT",
        default=30.0,
        convert=float,
        help="seconds to connect to an edge node, and between bytes of its answer",
    )
    add_flag(
        parser,
        "--trace-sample-ratio",
        env="OTEL_TRACES_SAMPLER_ARG",
        default=1.0,
        convert=float,
        help="share of new traces recorded (a caller's sampled traceparent is always continued)",
    )
    add_flag(
        parser,
        "--ready-file",
        env="EDGE_ROUTER_READY_FILE",
        default=None,
        convert=Path,
        help="write a JSON ready report here once listening",
    )
    add_logging_flags(parser, env_prefix="EDGE_ROUTER")
    return parser


def parse_config(argv: Sequence[str] | None) -> tuple[RouterConfig, str]:
    args = build_parser().parse_args(argv)
    try:
        trusted = parse_networks(args.trusted_proxy)
    except ValueError as exc:
        fail(PROG, f"--trusted-proxy: {exc}")
    try:
        control_plane_tls = control_plane_tls_from_args(args)
        if control_plane_tls is not None:
            control_plane_tls.load()  # a wrong file is refused now, naming its flag
        config = RouterConfig(
            world=args.world,
            router_id=args.router_id,
            host=args.host,
            port=args.port,
            admin_port=args.admin_port,
            edges=tuple(args.edge),
            edges_file=args.edges_file,
            control_plane=args.control_plane,
            token=args.token,
            control_plane_tls=control_plane_tls,
            admin_token=args.admin_token,
            wan=args.wan,
            trusted_proxies=trusted,
            geo_dbs=tuple(args.geo_db),
            geo_cache_dir=args.geo_cache_dir,
            health=HealthSettings(
                interval_s=args.health_interval,
                timeout_s=args.health_timeout,
                unhealthy_after=args.unhealthy_after,
                healthy_after=args.healthy_after,
                eject_after_5xx=args.eject_after_5xx,
                base_ejection_s=args.ejection,
                max_ejection_s=args.max_ejection,
            ),
            client_timeouts=_client_timeouts(args.client_timeout, args.keepalive_timeout),
            upstream_timeout_s=args.upstream_timeout,
            trace_sample_ratio=args.trace_sample_ratio,
            ready_file=args.ready_file,
        )
    except ConfigError as exc:
        fail(PROG, str(exc))
    return config, args.log_level


def _client_timeouts(client_s: float, keepalive_s: float) -> ClientTimeouts:
    try:
        return ClientTimeouts(head_s=client_s, body_s=client_s, idle_s=keepalive_s)
    except ValueError:
        fail(PROG, f"--client-timeout {client_s:g} / --keepalive-timeout {keepalive_s:g}: must be positive")


def main(argv: Sequence[str] | None = None) -> int:
    config, log_level = parse_config(argv)
    configure_logging(log_level)
    ready = ready_file_reporter(SERVICE_NAME, config.ready_file)
    try:
        serve_until_signalled(lambda stop: run(config, ready=ready, stop=stop), fast_loop=True)
    except (GeoError, RouterError, TracingError, OSError) as exc:
        fail(PROG, str(exc), code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
