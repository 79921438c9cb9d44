"""The ``edgecdn`` command: one entry point, a subcommand per task.

Each subcommand lives in its own module exposing ``register(subparsers)``, which adds
its parser and sets ``handler`` (a callable taking the parsed namespace and returning an
exit code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from runtime.cli import HelpFormatter, configure_logging, fail
from simulator import chaos_cmd, load_cmd, status_cmd, up_cmd, world_cmd
from simulator.k8s import cmd as k8s_cmd

PROG = "edgecdn"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "EdgeCDN: start a local world, inspect the world model, generate load, inject faults, "
            "render Kubernetes manifests."
        ),
        formatter_class=HelpFormatter,
    )
    parser.add_argument(
        "--log-level", default="warning", choices=["debug", "info", "warning", "error"], help="logging level"
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    up_cmd.register(subparsers)
    world_cmd.register(subparsers)
    load_cmd.register(subparsers)
    status_cmd.register(subparsers)
    chaos_cmd.register(subparsers)
    k8s_cmd.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    try:
        code: int = args.handler(args)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # output piped into `head` and closed: not an error worth a trace
        return 0
    except OSError as exc:
        fail(PROG, str(exc))
    return code


if __name__ == "__main__":
    sys.exit(main())
