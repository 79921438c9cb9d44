"""``edgectl`` entry point: parse the command, resolve server and token, run, report.

Server and token come from ``--server``/``--token``, else ``EDGECTL_SERVER``/``EDGECTL_TOKEN``,
else the running local world's ``.edgecdn/world.json`` (its control-plane address and its
operator token). Every failure prints one ``edgectl: ...`` line and exits 1 (2 for usage).
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from control_plane.edgectl.cache_cmd import add_parsers as add_cache_parsers
from control_plane.edgectl.commands import run_command
from control_plane.edgectl.errors import EdgectlError
from control_plane.edgectl.gateways_cmd import add_parsers as add_gateway_parsers
from control_plane.edgectl.keys_cmd import add_parsers as add_keys_parsers
from control_plane.edgectl.keys_cmd import keys_command
from control_plane.edgectl.output import OUTPUTS
from control_plane.edgectl.rollout_cmd import add_parsers as add_rollout_parsers
from control_plane.edgectl.traces_cmd import add_parsers as add_trace_parsers
from cpclient import ControlPlaneCallError, TlsSettings
from cpclient.apps import ABIS
from manifest import ManifestError
from runtime.cli import add_flag, new_parser
from runtime.errors import WorldStateError
from runtime.signing import WORLD_SIGNING_KEY_FILE
from runtime.world_state import read_world_state, state_dir

PROG = "edgectl"
OUTPUT_HELP = "table (fits 80 columns), wide (every column, whatever the width) or json"


def _output_flag() -> argparse.ArgumentParser:
    """``-o`` accepted after the command too (``edgectl nodes list -o json``); SUPPRESS keeps
    the global value unless the command-level flag is given."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-o", "--output", choices=OUTPUTS, default=argparse.SUPPRESS, help=OUTPUT_HELP)
    return parent


def build_parser() -> argparse.ArgumentParser:
    parser = new_parser(PROG, "Operate an EdgeCDN control plane.")
    output = [_output_flag()]
    add_flag(parser, "--server", env="EDGECTL_SERVER", default=None, help="control plane host:port")
    add_flag(parser, "--token", env="EDGECTL_TOKEN", default=None, help="bearer token")
    add_flag(
        parser, "--ca-cert", env="EDGECTL_CA_CERT", default=None, convert=Path, help="PEM CA (enables TLS)"
    )
    add_flag(
        parser, "--client-cert", env="EDGECTL_CLIENT_CERT", default=None, convert=Path, help="PEM cert (mTLS)"
    )
    add_flag(
        parser, "--client-key", env="EDGECTL_CLIENT_KEY", default=None, convert=Path, help="PEM key (mTLS)"
    )
    parser.add_argument("-o", "--output", choices=OUTPUTS, default="table", help=OUTPUT_HELP)
    commands = parser.add_subparsers(dest="group", required=True, metavar="COMMAND")

    modules = commands.add_parser("modules", help="the module registry").add_subparsers(
        dest="action", required=True
    )
    push = modules.add_parser("push", help="upload a .wasm module", parents=output)
    push.add_argument("file", type=Path)
    push.add_argument("--name", default=None, help="name for listings (default: file stem)")
    push.add_argument("--abi", choices=sorted(ABIS), default="wagi")
    _sign_flag(push)
    modules.add_parser("list", help="list modules", parents=output)
    rm = modules.add_parser("rm", help="delete a module", parents=output)
    rm.add_argument("digest")

    apps = commands.add_parser("apps", help="app versions").add_subparsers(dest="action", required=True)
    register = apps.add_parser("register", help="register an app version from a manifest", parents=output)
    register.add_argument("manifest", type=Path)
    register.add_argument(
        "--allow-origin-network",
        action="append",
        default=[],
        metavar="CIDR|HOST",
        help="allow origins on this link-local/metadata network or host (the control plane must too)",
    )
    _sign_flag(register)
    apps.add_parser("list", help="list apps", parents=output)
    show = apps.add_parser("show", help="show NAME[@VERSION] (latest when no version)", parents=output)
    show.add_argument("ref")
    remove = apps.add_parser(
        "rm", help="remove NAME@VERSION (refused while deployed or in a rollout)", parents=output
    )
    remove.add_argument("ref")

    deploy = commands.add_parser("deploy", help="deploy NAME@VERSION now", parents=output)
    deploy.add_argument("ref")
    where = deploy.add_mutually_exclusive_group(required=True)
    where.add_argument("--regions", help="comma-separated region ids")
    where.add_argument("--nodes", help="comma-separated node ids")
    where.add_argument("--all", action="store_true", help="every region and node")
    deploy.add_argument("--no-wait", action="store_true", help="return without waiting for ACKs")
    deploy.add_argument("--timeout", type=float, default=60.0, help="seconds to wait for every node")
    deploy.add_argument(
        "--force", action="store_true", help="abort (roll back) an active rollout of the app first"
    )
    deploy.add_argument("--allow-empty", action="store_true", help="accept regions no node has reported yet")

    nodes = commands.add_parser("nodes", help="the node inventory").add_subparsers(
        dest="action", required=True
    )
    nodes.add_parser("list", help="list nodes", parents=output)
    commands.add_parser("status", help="control plane health and a summary", parents=output)
    add_trace_parsers(commands, output)
    add_rollout_parsers(commands, output)
    add_gateway_parsers(commands, output)
    add_cache_parsers(commands, output)
    add_keys_parsers(commands, output)
    return parser


def _sign_flag(command: argparse.ArgumentParser) -> None:
    add_flag(
        command, "--sign", env="EDGECTL_SIGN_KEY", default=None, convert=Path, metavar="KEY",
        help="Ed25519 private key (PEM, from `edgectl keys generate`) to sign each module's digest with",
    )  # fmt: skip


def _tls(args: argparse.Namespace) -> TlsSettings | None:
    if args.ca_cert is None and args.client_cert is None:
        return None
    try:
        return TlsSettings(
            ca=None if args.ca_cert is None else args.ca_cert.read_bytes(),
            cert=None if args.client_cert is None else args.client_cert.read_bytes(),
            key=None if args.client_key is None else args.client_key.read_bytes(),
        )
    except (OSError, ValueError) as exc:
        raise EdgectlError(f"TLS settings: {exc}") from exc


def resolve_target(args: argparse.Namespace) -> tuple[str, str]:
    """(server, token) from flags/env, falling back to the running world's state file."""
    server, token = args.server, args.token
    if server is None or token is None:
        try:
            state = read_world_state()
        except WorldStateError as exc:
            missing = "--server" if server is None else "--token"
            raise EdgectlError(f"no {missing} given (nor EDGECTL_* set) and {exc}") from exc
        server = server or state.control_plane_address
        token = token or state.tokens.get("operator") or state.tokens.get("viewer")
        if token is None:
            raise EdgectlError("no token given and the world state lists none; pass --token")
    return server, token


def _sign_with_the_worlds_key(args: argparse.Namespace) -> None:
    """Next to a local world (the server found through its state directory), modules are
    signed with the world's key unless ``--sign`` names another: its nodes trust only that."""
    if getattr(args, "sign", "absent") is None and args.server is None:
        world_key = state_dir() / WORLD_SIGNING_KEY_FILE
        if world_key.is_file():
            args.sign = world_key


def main(argv: Sequence[str] | None = None) -> int:  # noqa: PLR0911 - one exit per kind of failure
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.getLogger("grpc").setLevel(logging.ERROR)
    try:
        if args.group == "keys":  # local files only: no control plane to resolve
            return keys_command(args)
        server, token = resolve_target(args)
        _sign_with_the_worlds_key(args)
        return asyncio.run(run_command(args, server=server, token=token, tls=_tls(args)))
    except EdgectlError as exc:
        print(f"{PROG}: {exc.message}", file=sys.stderr)
        return exc.exit_code
    except ControlPlaneCallError as exc:
        hint = " (check --token or EDGECTL_TOKEN)" if exc.code == "UNAUTHENTICATED" else ""
        print(f"{PROG}: {exc.message}{hint}", file=sys.stderr)
        return 1
    except ManifestError as exc:
        print(f"{PROG}: invalid manifest: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"{PROG}: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
