"""``mqtt-broker`` / ``python -m mqtt_broker``: the world's MQTT broker process."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from pathlib import Path

from mqtt_broker.config import BrokerConfig
from mqtt_broker.errors import BrokerError
from mqtt_broker.server import SERVICE_NAME, mosquitto_for, run, start_mosquitto
from runtime.cli import add_flag, add_logging_flags, configure_logging, fail, new_parser
from runtime.errors import ConfigError
from runtime.process import serve_until_signalled
from runtime.ready import ready_file_reporter

PROG = "mqtt-broker"


def parse_config(argv: Sequence[str] | None) -> tuple[BrokerConfig, str]:
    parser = new_parser(PROG, "The EdgeCDN world's MQTT broker: Mosquitto when installed, else amqtt.")
    add_flag(parser, "--host", env="MQTT_BROKER_HOST", default="127.0.0.1", help="address to listen on")
    add_flag(parser, "--port", env="MQTT_BROKER_PORT", default=0, convert=int, help="port (0: any free)")
    add_flag(
        parser, "--users", env="MQTT_BROKER_USERS", default=None, convert=Path,
        help="JSON file of user -> password (required: anonymous clients are refused)",
    )  # fmt: skip
    add_flag(parser, "--data-dir", env="MQTT_BROKER_DATA_DIR", default=Path(".edgecdn/mqtt"), convert=Path,
             help="where the broker's configuration and password file are written")  # fmt: skip
    add_flag(parser, "--engine", env="MQTT_BROKER_ENGINE", default="auto",
             choices=["auto", "mosquitto", "amqtt"],
             help="which broker: mosquitto when installed (auto), or amqtt")  # fmt: skip
    add_flag(parser, "--ready-file", env="MQTT_BROKER_READY_FILE", default=None, convert=Path,
             help="write a JSON ready report here once listening")  # fmt: skip
    add_flag(parser, "--tls-cert", env="MQTT_BROKER_TLS_CERT", default=None, convert=Path,
             help="serve mqtts:// with this certificate (PEM; Mosquitto only)")  # fmt: skip
    add_flag(parser, "--tls-key", env="MQTT_BROKER_TLS_KEY", default=None, convert=Path,
             help="the certificate's private key (PEM)")  # fmt: skip
    add_flag(parser, "--client-ca", env="MQTT_BROKER_CLIENT_CA", default=None, convert=Path,
             help="require client certificates signed by this CA (mutual TLS), and passwords")  # fmt: skip
    add_logging_flags(parser, env_prefix="MQTT_BROKER")
    args = parser.parse_args(argv)
    users: dict[str, str] = {}
    if args.users is not None:
        try:
            data = json.loads(args.users.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            fail(PROG, f"--users {args.users}: {exc}")
        if not isinstance(data, dict) or not all(isinstance(v, str) for v in data.values()):
            fail(PROG, f"--users {args.users}: a JSON object of user -> password")
        users = {str(k): v for k, v in data.items()}
    try:
        config = BrokerConfig(
            host=args.host, port=args.port, users=users, data_dir=args.data_dir, engine=args.engine,
            ready_file=args.ready_file, tls_cert=args.tls_cert, tls_key=args.tls_key,
            client_ca=args.client_ca,
        )  # fmt: skip
    except ConfigError as exc:
        fail(PROG, str(exc))
    return config, args.log_level


def main(argv: Sequence[str] | None = None) -> int:
    config, log_level = parse_config(argv)
    configure_logging(log_level)
    ready = ready_file_reporter(SERVICE_NAME, config.ready_file)
    try:
        binary = mosquitto_for(config)
        if binary is not None:
            start_mosquitto(config, binary)  # returns only by raising
        serve_until_signalled(lambda stop: run(config, ready=ready, stop=stop))
    except (BrokerError, OSError) as exc:
        fail(PROG, str(exc), code=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
