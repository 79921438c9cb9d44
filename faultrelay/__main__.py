"""``edge-faultrelay`` / ``python -m faultrelay``: the fault-injecting TCP relay's entry point."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from faultrelay.config import LinkSpec, RelayConfig
from faultrelay.errors import FaultRelayError
from faultrelay.server import SERVICE_NAME, run
from runtime.cli import add_flag, add_logging_flags, configure_logging, fail, new_parser
from runtime.errors import ConfigError
from runtime.process import serve_until_signalled
from runtime.ready import ready_file_reporter

PROG = "edge-faultrelay"
TOKEN_ENV = "EDGE_FAULTRELAY_TOKEN"  # noqa: S105 - the variable's name, not a secret


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(
        PROG,
        "A fault-injecting TCP relay (like Toxiproxy): relays each link's connections to its upstream\n"
        "and, on request through its admin API, cuts a link (partition) for a while.",
    )
    add_flag(
        parser,
        "--link",
        env="EDGE_FAULTRELAY_LINKS",
        default=[],
        repeated=True,
        metavar="NAME=LISTEN_PORT:UPSTREAM_HOST:UPSTREAM_PORT",
        help="a link to relay (repeatable; LISTEN_PORT 0: any free port)",
    )
    add_flag(parser, "--host", env="EDGE_FAULTRELAY_HOST", default="127.0.0.1", help="address to listen on")
    add_flag(
        parser,
        "--admin-port",
        env="EDGE_FAULTRELAY_ADMIN_PORT",
        default=0,
        convert=int,
        help="admin API port (0: any free)",
    )
    # Not add_flag: --help must not print a token taken from the environment.
    parser.add_argument(
        "--token",
        default=argparse.SUPPRESS,
        help=f"bearer token every admin request must carry (required) [env: {TOKEN_ENV}]",
    )
    add_flag(
        parser,
        "--connect-timeout",
        env="EDGE_FAULTRELAY_CONNECT_TIMEOUT",
        default=5.0,
        convert=float,
        help="seconds to reach the upstream before the client's connection is closed",
    )
    add_flag(
        parser,
        "--state-file",
        env="EDGE_FAULTRELAY_STATE_FILE",
        default=None,
        convert=Path,
        help="JSON file that keeps the faults in force across restarts",
    )
    add_flag(
        parser,
        "--ready-file",
        env="EDGE_FAULTRELAY_READY_FILE",
        default=None,
        convert=Path,
        help="write a JSON ready report here once listening",
    )
    add_logging_flags(parser, env_prefix="EDGE_FAULTRELAY")
    return parser


def parse_config(argv: Sequence[str] | None) -> tuple[RelayConfig, str]:
    args = build_parser().parse_args(argv)
    token = getattr(args, "token", None) or os.environ.get(TOKEN_ENV, "")
    try:
        config = RelayConfig(
            links=tuple(LinkSpec.parse(text) for text in args.link),
            token=token,
            host=args.host,
            admin_port=args.admin_port,
            connect_timeout_s=args.connect_timeout,
            state_file=args.state_file,
            ready_file=args.ready_file,
        )
    except ConfigError as exc:
        fail(PROG, str(exc))
    return config, args.log_level


def main(argv: Sequence[str] | None = None) -> int:
    config, log_level = parse_config(argv)
    configure_logging(log_level)
    ready = ready_file_reporter(SERVICE_NAME, config.ready_file)
    errors: list[str] = []
    try:
        serve_until_signalled(lambda stop: run(config, ready=ready, stop=stop), fast_loop=True)
    except* (FaultRelayError, OSError) as group:  # run's task group wraps what its body raises
        errors.extend(str(exc) for exc in _leaves(group))
    if errors:
        fail(PROG, "; ".join(errors), code=1)
    return 0


def _leaves(group: BaseExceptionGroup[BaseException]) -> list[BaseException]:
    return [
        leaf
        for exc in group.exceptions
        for leaf in (_leaves(exc) if isinstance(exc, BaseExceptionGroup) else [exc])
    ]


if __name__ == "__main__":
    sys.exit(main())
