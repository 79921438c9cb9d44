"""``edge-node`` / ``python -m edge_node``: the edge node process entry point."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from edge_node.config import EdgeNodeConfig
from edge_node.errors import EdgeNodeError
from edge_node.server import SERVICE_NAME, run
from edge_node.workers import supervise
from geo.errors import GeoError
from geo.forwarding import parse_networks
from iotwire.link import add_mqtt_flags, link_from_args
from runtime.cli import add_flag, add_logging_flags, configure_logging, fail, new_parser
from runtime.durations import parse_duration
from runtime.errors import ConfigError
from runtime.process import serve_until_signalled
from runtime.ready import ready_file_reporter
from runtime.signing import KeyFileError, load_trusted_keys
from runtime.tls import add_control_plane_tls_flags, control_plane_tls_from_args
from tracing.errors import TracingError
from wasm_host.errors import WasmHostError
from wasm_host.outbound_policy import NetworkAllowance

PROG = "edge-node"
DEFAULT_WORLD = Path("deploy/local/world.toml")


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, "An EdgeCDN edge node: runs WebAssembly handlers with geo headers.")
    add_flag(
        parser, "--app", env="EDGE_NODE_APP", default=None, convert=Path, help="app manifest (TOML) to serve"
    )
    add_flag(
        parser, "--region", env="EDGE_NODE_REGION", default="", help="region id this node serves (required)"
    )
    add_flag(parser, "--world", env="EDGECDN_WORLD", default=DEFAULT_WORLD, convert=Path, help="world file")
    add_flag(parser, "--host", env="EDGE_NODE_HOST", default="127.0.0.1", help="address to listen on")
    add_flag(parser, "--port", env="EDGE_NODE_PORT", default=0, convert=int, help="port (0: any free)")
    add_flag(parser, "--node-id", env="EDGE_NODE_ID", default="", help="node id (default: REGION-a)")
    add_flag(
        parser,
        "--trusted-proxy",
        env="EDGE_NODE_TRUSTED_PROXIES",
        default=[],
        repeated=True,
        metavar="CIDR",
        help="peers whose X-Forwarded-For/Forwarded and geo headers are believed (repeatable)",
    )
    add_flag(
        parser,
        "--allow-outbound-network",
        env="EDGE_NODE_ALLOW_OUTBOUND_NETWORKS",
        default=[],
        repeated=True,
        metavar="CIDR|HOST",
        help="link-local or metadata network or host that handlers' outbound HTTP may reach (repeatable)",
    )
    add_flag(
        parser,
        "--geo-db",
        env="EDGE_NODE_GEO_DBS",
        default=[],
        repeated=True,
        convert=Path,
        metavar="PATH",
        help="extra GeoIP2/GeoLite2 database consulted after the world's own (repeatable)",
    )
    add_flag(
        parser, "--data-dir", env="EDGE_NODE_DATA_DIR", default=Path(".edgecdn/edge-node"), convert=Path,
        help="compiled-module cache, geo database, last good assignment",
    )  # fmt: skip
    add_flag(
        parser, "--module-cache-dir", env="EDGE_NODE_MODULE_CACHE_DIR", default=None, convert=Path,
        help="compiled modules and components ahead of time, shareable by the nodes of one machine "
        "(default: DATA_DIR/compiled)",
    )  # fmt: skip
    add_flag(
        parser, "--geo-cache-dir", env="EDGE_NODE_GEO_CACHE_DIR", default=None, convert=Path,
        help="where the world's geo database is built or found (default: DATA_DIR/geo)",
    )  # fmt: skip
    add_flag(
        parser, "--control-plane", env="EDGE_NODE_CONTROL_PLANE", default=None,
        help="control plane gRPC address (host:port); the node then serves what it is assigned",
    )  # fmt: skip
    add_flag(
        parser, "--token", env="EDGE_NODE_TOKEN", default="",
        help="bearer token: the node's own (bound to its --node-id and --region) or a fleet-wide node token",
    )  # fmt: skip
    add_control_plane_tls_flags(parser, env_prefix="EDGE_NODE")
    add_flag(
        parser, "--trusted-key", env="EDGE_NODE_TRUSTED_KEYS", default=[], repeated=True, convert=Path,
        metavar="PATH", help="Ed25519 public key (PEM) trusted to sign modules; with any, every module "
        "from the control plane must be signed by one of them, else it is NACKed (repeatable)",
    )  # fmt: skip
    add_flag(
        parser, "--reconnect-max", env="EDGE_NODE_RECONNECT_MAX", default=10.0, convert=parse_duration,
        help="longest wait between reconnects to the control plane (e.g. 1s, 10s)",
    )  # fmt: skip
    add_flag(
        parser, "--capacity-rps", env="EDGE_NODE_CAPACITY_RPS", default=5000.0, convert=float,
        help="requests/s this node can serve at full load (routing weight, utilization)",
    )  # fmt: skip
    add_flag(
        parser, "--trace-sample-ratio", env="OTEL_TRACES_SAMPLER_ARG", default=1.0, convert=float,
        help="share of new traces recorded (a caller's sampled traceparent is always continued); "
        "spans go to --control-plane or OTEL_EXPORTER_OTLP_ENDPOINT",
    )  # fmt: skip
    add_flag(
        parser, "--max-body-bytes", env="EDGE_NODE_MAX_BODY_BYTES", default=10 * 1024 * 1024, convert=int,
        help="largest request body accepted (413 above)",
    )  # fmt: skip
    add_flag(
        parser, "--max-header-bytes", env="EDGE_NODE_MAX_HEADER_BYTES", default=16 * 1024, convert=int,
        help="largest total request header size accepted (431 above)",
    )  # fmt: skip
    add_flag(
        parser, "--cache-bytes", env="EDGE_NODE_CACHE_BYTES", default=64 * 1024 * 1024, convert=int,
        help="HTTP cache memory tier size in bytes (0: no cache in memory)",
    )  # fmt: skip
    add_flag(
        parser, "--cache-dir", env="EDGE_NODE_CACHE_DIR", default=None, convert=Path,
        help="HTTP cache disk tier (bounded by --cache-dir-bytes; survives restarts, as nginx's proxy_cache)",
    )  # fmt: skip
    add_flag(
        parser, "--cache-dir-bytes", env="EDGE_NODE_CACHE_DIR_BYTES", default=1024 * 1024 * 1024, convert=int,
        help="HTTP cache disk tier size in bytes",
    )  # fmt: skip
    add_flag(
        parser, "--ready-file", env="EDGE_NODE_READY_FILE", default=None, convert=Path,
        help="write a JSON ready report here once listening",
    )  # fmt: skip
    add_flag(
        parser, "--workers", env="EDGE_NODE_WORKERS", default=os.cpu_count() or 1, convert=int,
        help="processes serving the port (SO_REUSEPORT), as nginx's worker_processes: one control-plane "
        "session, one shared --cache-dir, metrics summed (default: the CPU count)",
    )  # fmt: skip
    # Set by the supervisor of --workers N on the workers it starts (edge_node.workers).
    parser.add_argument("--worker-fd", type=int, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--worker-index", type=int, default=0, help=argparse.SUPPRESS)
    add_mqtt_flags(
        parser,
        env_prefix="EDGE_NODE",
        help_url="the world's MQTT broker (mqtt://HOST:PORT), as user control-plane: the node "
        "follows its region's IoT gateways and serves them at GET /_edge/iot",
    )
    add_logging_flags(parser, env_prefix="EDGE_NODE")
    return parser


def parse_config(argv: Sequence[str] | None) -> tuple[EdgeNodeConfig, str]:
    args = build_parser().parse_args(argv)
    try:
        allowance = NetworkAllowance.parse(args.allow_outbound_network)
    except ValueError as exc:
        fail(PROG, f"--allow-outbound-network: {exc}")
    try:
        control_plane_tls = control_plane_tls_from_args(args)
        if control_plane_tls is not None:
            control_plane_tls.load()  # a wrong file is refused now, naming its flag
        config = EdgeNodeConfig(
            app=args.app,
            region=args.region,
            world=args.world,
            node_id=args.node_id or f"{args.region}-a",
            host=args.host,
            port=args.port,
            trusted_proxies=parse_networks(args.trusted_proxy),
            allow_outbound_networks=allowance,
            geo_dbs=tuple(args.geo_db),
            data_dir=args.data_dir,
            max_body_bytes=args.max_body_bytes,
            max_header_bytes=args.max_header_bytes,
            geo_cache_dir_override=args.geo_cache_dir,
            module_cache_dir_override=args.module_cache_dir,
            control_plane=args.control_plane,
            token=args.token,
            control_plane_tls=control_plane_tls,
            reconnect_max_s=args.reconnect_max,
            capacity_rps=args.capacity_rps,
            trace_sample_ratio=args.trace_sample_ratio,
            ready_file=args.ready_file,
            response_cache_bytes=args.cache_bytes,
            cache_dir=args.cache_dir,
            cache_dir_bytes=args.cache_dir_bytes,
            mqtt=link_from_args(args),
            trusted_keys=load_trusted_keys(args.trusted_key),
            workers=1 if args.worker_fd is not None else args.workers,
            worker_fd=args.worker_fd,
            worker_index=args.worker_index,
        )
    except ConfigError as exc:
        fail(PROG, str(exc))
    except KeyFileError as exc:
        fail(PROG, f"--trusted-key: {exc}")
    except ValueError as exc:
        fail(PROG, f"--trusted-proxy: {exc}")
    return config, args.log_level


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    config, log_level = parse_config(arguments)
    configure_logging(log_level)
    ready = ready_file_reporter(SERVICE_NAME, config.ready_file)
    try:
        if config.workers > 1:
            serve_until_signalled(lambda stop: supervise(config, arguments, ready=ready, stop=stop))
        else:  # a worker tells its supervisor, not a ready file, that it is listening
            reporter = None if config.worker_fd is not None else ready
            serve_until_signalled(lambda stop: run(config, ready=reporter, stop=stop), fast_loop=True)
    except (GeoError, EdgeNodeError, WasmHostError, TracingError, OSError) as exc:
        fail(PROG, str(exc), code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
