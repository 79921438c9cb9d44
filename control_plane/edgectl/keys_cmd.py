"""``edgectl keys``: make and inspect the Ed25519 keys that sign modules (no control plane needed).

    edgectl keys generate PATH      # writes PATH (private, 0600) and PATH.pub; prints the key id
    edgectl keys show PATH          # the key id of a private or public key file

The private key signs (``edgectl modules push --sign PATH``, ``apps register --sign PATH``);
the ``.pub`` file is what edge nodes and gateways trust (``--trusted-key PATH.pub``).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from control_plane.edgectl.errors import EdgectlError
from control_plane.edgectl.output import console, print_json
from runtime.signing import (
    KeyFileError,
    SigningKey,
    generate_key_pair,
    load_public_key,
    load_signing_key,
    public_key_path,
)


def add_parsers(
    commands: argparse._SubParsersAction[argparse.ArgumentParser], output: list[argparse.ArgumentParser]
) -> None:
    keys = commands.add_parser("keys", help="Ed25519 module signing keys (local files)").add_subparsers(
        dest="action", required=True
    )
    generate = keys.add_parser(
        "generate", help="write a new private key to PATH and its public key to PATH.pub", parents=output
    )
    generate.add_argument("path", type=Path, metavar="PATH")
    show = keys.add_parser("show", help="print the key id of a private or public key file", parents=output)
    show.add_argument("path", type=Path, metavar="PATH")


def keys_command(args: argparse.Namespace) -> int:
    """Run ``edgectl keys ...``; a bad or existing key file is an EdgectlError saying which."""
    path: Path = args.path
    try:
        if args.action == "generate":
            report = {"key_id": generate_key_pair(path), "private_key": str(path)}
            report["public_key"] = str(public_key_path(path))
        else:
            report = {"key_id": _key_id_of(path), "path": str(path)}
    except KeyFileError as exc:
        raise EdgectlError(str(exc)) from exc
    if args.output == "json":
        print_json(report)
    elif args.action == "generate":
        console().print(
            f"key {report['key_id']}: private key {report['private_key']} (keep it secret), "
            f"public key {report['public_key']} (give it to nodes and gateways: --trusted-key)",
            highlight=False,
        )
    else:
        console().print(report["key_id"], highlight=False)
    return 0


def _key_id_of(path: Path) -> str:
    """The key id of either kind of key file."""
    try:
        return load_public_key(path)[0]
    except KeyFileError as public_error:
        try:
            return load_signing_key(path).key_id
        except KeyFileError:
            raise public_error from None


def signing_key(path: Path | None) -> SigningKey | None:
    """The ``--sign`` key, loaded; EdgectlError saying what is wrong with the file."""
    if path is None:
        return None
    try:
        return load_signing_key(path)
    except KeyFileError as exc:
        raise EdgectlError(f"--sign: {exc}") from exc
