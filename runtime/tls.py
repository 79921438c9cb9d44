"""How a process reaches the control plane over TLS: the files its flags name, checked once.

Every process that talks to the control plane (edge-node, edge-router, iot-gateway) takes
the same four flags, so one cluster Secret serves them all::

    --control-plane-ca PATH           CA bundle the control plane's certificate must chain to
    --control-plane-cert PATH         our client certificate, for mutual TLS
    --control-plane-key PATH          its private key
    --control-plane-server-name NAME  the name to expect in the control plane's certificate
                                      (when the address is not that name, e.g. an IP)

Any of them turns TLS on for everything the process sends the control plane: its session
stream, module downloads, the router's inventory watch, and spans exported there. The files
are read and parsed once at start-up (``ClientTlsFiles.load``), so a missing file, a key
that is not a key, or a certificate without its key is refused with the flag's name before
the process serves, not found at the first handshake. Certificates are read again only when
the process restarts (a Kubernetes rollout when cert-manager renews the Secret).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from runtime.cli import add_flag
from runtime.errors import ConfigError


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTlsPem:
    """The PEM bytes of ``ClientTlsFiles``: what a gRPC channel's credentials are made of."""

    ca: bytes | None
    cert: bytes | None
    key: bytes | None
    server_name: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientTlsFiles:
    """The CA to trust (None: the system's roots) and, for mutual TLS, our certificate and key."""

    ca: Path | None = None
    cert: Path | None = None
    key: Path | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ConfigError(
                field="--control-plane-cert/--control-plane-key",
                reason="give both a client certificate and its key, or neither",
            )
        if self.server_name is not None and not self.server_name.strip():
            raise ConfigError(field="--control-plane-server-name", reason="must not be empty")

    def load(self) -> ClientTlsPem:
        """The files' bytes, each parsed as what it should be; ConfigError naming the flag if not."""
        ca = _read(self.ca, "--control-plane-ca")
        cert = _read(self.cert, "--control-plane-cert")
        key = _read(self.key, "--control-plane-key")
        if ca is not None:
            _certificates(ca, "--control-plane-ca")
        if cert is not None and key is not None:
            _check_pair(_certificates(cert, "--control-plane-cert")[0], key)
        return ClientTlsPem(ca=ca, cert=cert, key=key, server_name=self.server_name)


def add_control_plane_tls_flags(parser: argparse.ArgumentParser, *, env_prefix: str) -> None:
    """The four ``--control-plane-*`` TLS flags (module docstring), each with its variable."""
    group = parser.add_argument_group("TLS to the control plane (any of these turns it on)")
    add_flag(
        group, "--control-plane-ca", env=f"{env_prefix}_CONTROL_PLANE_CA", default=None, convert=Path,
        metavar="PATH", help="CA bundle (PEM) the control plane's certificate must chain to "
        "(default with the other TLS flags: the system's roots)",
    )  # fmt: skip
    add_flag(
        group, "--control-plane-cert", env=f"{env_prefix}_CONTROL_PLANE_CERT", default=None, convert=Path,
        metavar="PATH", help="client certificate (PEM) for mutual TLS, with --control-plane-key",
    )  # fmt: skip
    add_flag(
        group, "--control-plane-key", env=f"{env_prefix}_CONTROL_PLANE_KEY", default=None, convert=Path,
        metavar="PATH", help="the client certificate's private key (PEM)",
    )  # fmt: skip
    add_flag(
        group, "--control-plane-server-name", env=f"{env_prefix}_CONTROL_PLANE_SERVER_NAME", default=None,
        metavar="NAME", help="name expected in the control plane's certificate (default: the address's host)",
    )  # fmt: skip


def control_plane_tls_from_args(args: argparse.Namespace) -> ClientTlsFiles | None:
    """What the flags ask for: None when no TLS flag is given (plain gRPC)."""
    ca, cert, key = args.control_plane_ca, args.control_plane_cert, args.control_plane_key
    server_name = args.control_plane_server_name
    if ca is None and cert is None and key is None and server_name is None:
        return None
    return ClientTlsFiles(ca=ca, cert=cert, key=key, server_name=server_name)


def check_tls_needs_control_plane(tls: ClientTlsFiles | None, control_plane: str | None) -> None:
    """TLS flags name how to reach a control plane: without ``--control-plane`` they are a mistake."""
    if tls is not None and control_plane is None:
        raise ConfigError(field="--control-plane-ca/-cert/-key", reason="need --control-plane")


def _read(path: Path | None, flag: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(field=flag, reason=f"cannot read {path}: {exc.strerror or exc}") from None


def _certificates(data: bytes, flag: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ConfigError(field=flag, reason=f"is not a PEM certificate ({exc})") from None


def _check_pair(certificate: x509.Certificate, key_pem: bytes) -> None:
    """The key must be the certificate's: else every handshake fails with a vaguer error."""
    try:
        key = load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            field="--control-plane-key", reason=f"is not an unencrypted PEM private key ({exc})"
        ) from None
    if key.public_key() != certificate.public_key():
        raise ConfigError(
            field="--control-plane-key", reason="is not the private key of --control-plane-cert's certificate"
        )
