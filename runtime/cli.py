"""Command-line conventions shared by every EdgeCDN entry point.

Each flag maps to one config field, can also be set by an environment variable, and shows
its default in ``--help``. Errors print ``prog: message`` on stderr and exit non-zero,
never a traceback.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from runtime.world_state import STATE_DIR_ENV, state_dir

LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults and keeps the description's own line breaks."""


def new_parser(prog: str, description: str) -> argparse.ArgumentParser:
    return argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)


class _AppendReplacingDefault(argparse.Action):
    """Like ``append``, but values given on the command line replace the default list."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        current = getattr(namespace, self.dest)
        items = [] if current is self.default or current is None else list(current)
        setattr(namespace, self.dest, [*items, values])


def add_flag(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    *,
    env: str,
    default: Any,
    help: str,  # noqa: A002 - mirrors argparse's own keyword
    convert: Callable[[str], Any] = str,
    repeated: bool = False,
    choices: Sequence[str] | None = None,
    metavar: str | None = None,
) -> None:
    """Add ``flag``; environment variable ``env`` overrides its default.

    A ``repeated`` flag may be given several times; its environment variable is a
    comma-separated list.
    """
    raw = os.environ.get(env)
    value = default
    if raw is not None:
        try:
            value = [convert(item) for item in split_csv([raw])] if repeated else convert(raw)
        except ValueError as exc:
            fail(parser_prog(parser), f"${env}={raw!r}: {exc}")
    parser.add_argument(
        flag,
        default=value,
        type=convert,
        action=_AppendReplacingDefault if repeated else "store",
        choices=choices,
        metavar=metavar,
        help=f"{help} [env: {env}]",
    )


def add_switch(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup,
    flag: str,
    *,
    env: str,
    help: str,  # noqa: A002 - mirrors argparse's own keyword
) -> None:
    """Add an on/off ``flag``; ``env`` set to 1/true/yes turns it on."""
    enabled = os.environ.get(env, "").strip().lower() in {"1", "true", "yes", "on"}
    parser.add_argument(flag, action="store_true", default=enabled, help=f"{help} [env: {env}]")


def add_state_dir_flag(
    parser: argparse.ArgumentParser, *, what: str = "the running world's state directory"
) -> None:
    """``--state-dir``: where world.json, logs and data are (``$EDGECDN_STATE_DIR`` or ``.edgecdn``)."""
    parser.add_argument(
        "--state-dir",
        type=Path,
        default=state_dir(),
        help=f"{what} [env: {STATE_DIR_ENV}] (default: %(default)s)",
    )


def parser_prog(parser: argparse.ArgumentParser | argparse._ArgumentGroup) -> str:
    prog = getattr(parser, "prog", None)
    return prog if isinstance(prog, str) else "edgecdn"


def add_logging_flags(parser: argparse.ArgumentParser, *, env_prefix: str) -> None:
    add_flag(
        parser,
        "--log-level",
        env=f"{env_prefix}_LOG_LEVEL",
        default="info",
        help="logging level",
        choices=["debug", "info", "warning", "error"],
    )


def configure_logging(level: str) -> None:
    """Configure the root logger once, at the CLI entry point only."""
    logging.basicConfig(level=level.upper(), format=LOG_FORMAT, stream=sys.stderr)


def fail(prog: str, message: str, *, code: int = 2) -> NoReturn:
    """Print ``prog: message`` on stderr and exit with ``code``."""
    print(f"{prog}: {message}", file=sys.stderr)
    raise SystemExit(code)


def split_csv(values: Sequence[str]) -> tuple[str, ...]:
    """Flatten repeated and comma-separated flag values: ``-x a,b -x c`` -> (a, b, c)."""
    return tuple(part.strip() for value in values for part in value.split(",") if part.strip())
