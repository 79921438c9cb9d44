"""``iot-gateway`` / ``python -m iot_gateway``: one or many simulated IoT gateways."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

from iot_gateway.config import DEFAULT_MODULE, GatewayConfig
from iot_gateway.errors import GatewayError
from iot_gateway.sensors import HeatWave, SensorName
from iot_gateway.server import SERVICE_NAME, run
from iotwire.link import add_mqtt_flags, link_from_args
from runtime.cli import add_flag, add_logging_flags, fail, new_parser, split_csv
from runtime.durations import parse_duration
from runtime.entry import serve_process
from runtime.errors import ConfigError
from runtime.signing import KeyFileError, load_trusted_keys
from runtime.tls import add_control_plane_tls_flags, control_plane_tls_from_args

PROG = "iot-gateway"
ENV = "IOT_GATEWAY"


def _heat_wave(text: str) -> HeatWave:
    parts = text.split(",")
    if len(parts) != 2:
        raise ValueError(f"{text!r}: give AT,FOR durations after the start, like 30s,2m")
    return HeatWave(start_s=parse_duration(parts[0]), duration_s=parse_duration(parts[1]))


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"{text!r}: a label is key=value")
    return key.strip(), value.strip()


def parse_config(argv: Sequence[str] | None) -> tuple[GatewayConfig, str]:
    parser = new_parser(PROG, "Simulated IoT gateways: sensors -> wasm telemetry module -> MQTT, with OTA.")
    add_mqtt_flags(parser, env_prefix=ENV, help_url="broker URL, mqtt://host:port")
    add_flag(parser, "--control-plane", env=f"{ENV}_CONTROL_PLANE", default=None,
             help="control plane HOST:PORT (module downloads, spans)")  # fmt: skip
    add_flag(
        parser, "--token", env=f"{ENV}_TOKEN", default="", help="control-plane token of the gateway role"
    )
    add_control_plane_tls_flags(parser, env_prefix=ENV)
    add_flag(parser, "--region", env=f"{ENV}_REGION", default="local", help="region id")
    add_flag(
        parser,
        "--gateway-id",
        env=f"{ENV}_GATEWAY_ID",
        default="gw",
        help="gateway id (ID-1..ID-N with --count N)",
    )
    add_flag(
        parser,
        "--count",
        env=f"{ENV}_COUNT",
        default=1,
        convert=int,
        help="gateways simulated by this process",
    )
    add_flag(parser, "--module", env=f"{ENV}_MODULE", default=DEFAULT_MODULE, convert=Path,
             help="initial wasm telemetry module (WAGI)")  # fmt: skip
    add_flag(parser, "--sensors", env=f"{ENV}_SENSORS", default="temperature,humidity",
             help="comma-separated: temperature, humidity, pressure, co2")  # fmt: skip
    add_flag(parser, "--interval", env=f"{ENV}_INTERVAL", default=1.0, convert=parse_duration,
             help="sampling interval (1s, 250ms, ...)")  # fmt: skip
    add_flag(parser, "--batch", env=f"{ENV}_BATCH", default=10, convert=int, help="samples per module call")
    add_flag(parser, "--seed", env=f"{ENV}_SEED", default=0, convert=int, help="the world's seed")
    add_flag(parser, "--heat-wave", env=f"{ENV}_HEAT_WAVE", default=None, convert=_heat_wave,
             help="AT,FOR: a heat wave AT after the start, lasting FOR")  # fmt: skip
    add_flag(parser, "--label", env=f"{ENV}_LABELS", default=[], convert=_label, repeated=True,
             help="k=v label in the status (repeatable)")  # fmt: skip
    add_flag(parser, "--state-dir", env=f"{ENV}_STATE_DIR", default=Path(".edgecdn"), convert=Path,
             help="where the last good modules are kept")  # fmt: skip
    add_flag(
        parser, "--http-port", env=f"{ENV}_HTTP_PORT", default=0, convert=int, help="/metrics port (0: free)"
    )
    add_flag(parser, "--http-host", env=f"{ENV}_HTTP_HOST", default="127.0.0.1",
             help="address of /metrics and /healthz (0.0.0.0 in a pod: kubelet, Prometheus)")  # fmt: skip
    add_flag(parser, "--trusted-key", env=f"{ENV}_TRUSTED_KEYS", default=[], repeated=True, convert=Path,
             metavar="PATH", help="Ed25519 public key (PEM) trusted to sign modules; with any, a module "
             "sent over the air must be signed by one of them, else it is refused (repeatable)")  # fmt: skip
    add_flag(parser, "--probation", env=f"{ENV}_PROBATION", default=3, convert=int,
             help="batches an update must pass before it is the last good module")  # fmt: skip
    add_flag(parser, "--buffer", env=f"{ENV}_BUFFER", default=100_000, convert=int,
             help="readings kept per gateway while the broker is away")  # fmt: skip
    add_flag(parser, "--ready-file", env=f"{ENV}_READY_FILE", default=None, convert=Path,
             help="write a JSON ready report here once listening")  # fmt: skip
    add_logging_flags(parser, env_prefix=ENV)
    args = parser.parse_args(argv)
    try:
        link = link_from_args(args)
        if link is None:
            raise ConfigError(field="--mqtt", reason="the broker URL is required")
        sensors: tuple[SensorName, ...] = split_csv([args.sensors])  # type: ignore[assignment]
        control_plane_tls = control_plane_tls_from_args(args)
        if control_plane_tls is not None:
            control_plane_tls.load()  # a wrong file is refused now, naming its flag
        config = GatewayConfig(
            link=link, control_plane=args.control_plane, token=args.token,
            control_plane_tls=control_plane_tls, region=args.region,
            gateway_id=args.gateway_id, count=args.count, module=args.module, sensors=sensors,
            interval_s=args.interval, batch=args.batch, seed=args.seed, heat_wave=args.heat_wave,
            labels=tuple(args.label), state_dir=args.state_dir, http_port=args.http_port,
            http_host=args.http_host,
            ready_file=args.ready_file, probation=args.probation, buffer_readings=args.buffer,
            trusted_keys=load_trusted_keys(args.trusted_key),
        )  # fmt: skip
    except ConfigError as exc:
        fail(PROG, str(exc))
    except KeyFileError as exc:
        fail(PROG, f"--trusted-key: {exc}")
    return config, args.log_level


def main(argv: Sequence[str] | None = None) -> int:
    config, log_level = parse_config(argv)
    return serve_process(
        prog=PROG,
        service=SERVICE_NAME,
        config=config,
        log_level=log_level,
        run=run,
        fatal=(GatewayError, OSError),
    )


if __name__ == "__main__":
    sys.exit(main())
