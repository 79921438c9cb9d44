"""``control-plane`` / ``python -m control_plane``: the control-plane process entry point."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from control_plane.config import ControlPlaneConfig
from control_plane.errors import ControlPlaneError
from control_plane.server import SERVICE_NAME, run
from geo.errors import GeoError
from geo.world import load_world
from iotwire.link import add_mqtt_flags, link_from_args
from runtime.cli import add_flag, add_logging_flags, fail, new_parser
from runtime.durations import parse_duration
from runtime.entry import serve_process
from runtime.errors import ConfigError
from tracing.errors import TracingError

PROG = "control-plane"


def parse_config(argv: Sequence[str] | None) -> tuple[ControlPlaneConfig, str]:
    parser = new_parser(PROG, "The EdgeCDN control plane (gRPC).")
    add_flag(parser, "--host", env="CONTROL_PLANE_HOST", default="127.0.0.1", help="address to listen on")
    add_flag(parser, "--port", env="CONTROL_PLANE_PORT", default=0, convert=int, help="port (0: any free)")
    add_flag(
        parser,
        "--metrics-port",
        env="CONTROL_PLANE_METRICS_PORT",
        default=None,
        convert=int,
        help="serve Prometheus /metrics over HTTP on this port (0: any free); none: no endpoint",
    )
    add_flag(
        parser,
        "--metrics-host",
        env="CONTROL_PLANE_METRICS_HOST",
        default=None,
        help="address for --metrics-port; none: the --host address",
    )
    add_flag(
        parser,
        "--data-dir",
        env="CONTROL_PLANE_DATA_DIR",
        default=None,
        convert=Path,
        help="state directory (SQLite, module blobs, generated tokens); none: a temporary one",
    )
    add_flag(
        parser,
        "--module-cache-dir",
        env="CONTROL_PLANE_MODULE_CACHE_DIR",
        default=None,
        convert=Path,
        help="where uploads are compiled ahead of time while they are checked (an edge node's "
        "--module-cache-dir on the same machine reuses them); none: DATA_DIR/compiled",
    )
    add_flag(
        parser,
        "--tokens",
        env="CONTROL_PLANE_TOKENS",
        default=None,
        convert=Path,
        help="tokens file (JSON or TOML, see docs/control-plane.md); none: generate into the data dir",
    )
    add_flag(parser, "--tls-cert", env="CONTROL_PLANE_TLS_CERT", default=None, convert=Path, help="PEM cert")
    add_flag(parser, "--tls-key", env="CONTROL_PLANE_TLS_KEY", default=None, convert=Path, help="PEM key")
    add_flag(
        parser,
        "--client-ca",
        env="CONTROL_PLANE_CLIENT_CA",
        default=None,
        convert=Path,
        help="PEM CA that client certificates must chain to (mutual TLS)",
    )
    add_flag(
        parser,
        "--heartbeat-interval",
        env="CONTROL_PLANE_HEARTBEAT_INTERVAL",
        default=1.0,
        convert=float,
        help="seconds between node heartbeats",
    )
    add_flag(
        parser,
        "--missed-heartbeats",
        env="CONTROL_PLANE_MISSED_HEARTBEATS",
        default=3,
        convert=int,
        help="heartbeats a node may miss before it is marked unreachable",
    )
    add_flag(
        parser,
        "--ready-file",
        env="CONTROL_PLANE_READY_FILE",
        default=None,
        convert=Path,
        help="write a JSON ready report here once listening",
    )
    add_flag(
        parser,
        "--grace",
        env="CONTROL_PLANE_GRACE",
        default=2.0,
        convert=float,
        help="seconds in-flight calls get to finish on shutdown",
    )
    add_flag(
        parser,
        "--world",
        env="CONTROL_PLANE_WORLD",
        default=None,
        convert=Path,
        help="world file whose regions deploys and rollouts may name before any node reports them",
    )
    add_flag(
        parser,
        "--allow-origin-network",
        env="CONTROL_PLANE_ALLOW_ORIGIN_NETWORKS",
        default=[],
        repeated=True,
        metavar="CIDR|HOST",
        help="let app origins use this link-local/metadata network or host (refused by default)",
    )
    _add_trace_flags(parser)
    add_mqtt_flags(
        parser,
        env_prefix="CONTROL_PLANE",
        help_url="the IoT gateways' MQTT broker (mqtt://host:port); none: GatewayService is off",
    )
    add_logging_flags(parser, env_prefix="CONTROL_PLANE")
    args = parser.parse_args(argv)
    try:
        world_regions = () if args.world is None else tuple(r.id for r in load_world(args.world).regions)
    except GeoError as exc:
        fail(PROG, f"--world: {exc}")
    try:
        config = ControlPlaneConfig(
            host=args.host,
            port=args.port,
            ready_file=args.ready_file,
            grace_seconds=args.grace,
            data_dir=args.data_dir,
            module_cache_dir=args.module_cache_dir,
            tokens_file=args.tokens,
            tls_cert=args.tls_cert,
            tls_key=args.tls_key,
            client_ca=args.client_ca,
            heartbeat_interval_s=args.heartbeat_interval,
            missed_heartbeats_allowed=args.missed_heartbeats,
            trace_max_spans=args.trace_max_spans,
            trace_retention_s=args.trace_retention,
            stats_bucket_s=args.stats_bucket,
            stats_max_window_s=args.stats_max_window,
            otlp_forward=args.otlp_forward,
            trace_sample_ratio=args.trace_sample_ratio,
            world_regions=world_regions,
            mqtt=link_from_args(args),
            allow_origin_networks=tuple(args.allow_origin_network),
            metrics_port=args.metrics_port,
            metrics_host=args.metrics_host,
        )
    except ConfigError as exc:
        fail(PROG, str(exc))
    return config, args.log_level


def _add_trace_flags(parser: argparse.ArgumentParser) -> None:
    add_flag(
        parser, "--trace-max-spans", env="CONTROL_PLANE_TRACE_MAX_SPANS", default=200_000, convert=int,
        help="spans the trace store keeps (oldest traces evicted first)",
    )  # fmt: skip
    add_flag(
        parser, "--trace-retention", env="CONTROL_PLANE_TRACE_RETENTION", default="1h",
        convert=parse_duration, help="how long traces are kept (e.g. 30m, 1h)",
    )  # fmt: skip
    add_flag(
        parser, "--stats-bucket", env="CONTROL_PLANE_STATS_BUCKET", default="5s", convert=parse_duration,
        help="granularity of rolling request statistics (windows are rounded out to it)",
    )  # fmt: skip
    add_flag(
        parser, "--stats-max-window", env="CONTROL_PLANE_STATS_MAX_WINDOW", default="15m",
        convert=parse_duration, help="longest statistics window kept and answered",
    )  # fmt: skip
    add_flag(
        parser, "--otlp-forward", env="CONTROL_PLANE_OTLP_FORWARD", default=None,
        help="also pass every span to this OTLP/gRPC collector (host:port, http:// or https:// URL)",
    )  # fmt: skip
    add_flag(
        parser, "--trace-sample-ratio", env="OTEL_TRACES_SAMPLER_ARG", default=1.0, convert=float,
        help="share of the control plane's own new traces sampled (callers' decisions are kept)",
    )  # fmt: skip


def main(argv: Sequence[str] | None = None) -> int:
    config, log_level = parse_config(argv)
    return serve_process(
        prog=PROG,
        service=SERVICE_NAME,
        config=config,
        log_level=log_level,
        run=run,
        fatal=(ControlPlaneError, TracingError),
    )


if __name__ == "__main__":
    sys.exit(main())
