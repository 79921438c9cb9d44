"""gRPC channels to the control plane: TLS or not, keepalive on, and the bearer-token metadata."""

from __future__ import annotations

from dataclasses import dataclass

import grpc

from runtime.tls import ClientTlsFiles

# Keepalive pings detect a dead connection within ~15 s even when no message is due:
# that is the deadline on a session stream's otherwise unbounded reads.
CHANNEL_OPTIONS: tuple[tuple[str, int], ...] = (
    ("grpc.keepalive_time_ms", 10_000),
    ("grpc.keepalive_timeout_ms", 5_000),
    ("grpc.keepalive_permit_without_calls", 1),
    ("grpc.max_receive_message_length", 8 * 1024 * 1024),
    # Every channel gets subchannels of its own. By default gRPC shares them process-wide,
    # with their reconnect back-off (up to 120 s): a session that opens a new channel after
    # a long outage then fails at once with the outage's stale error, for minutes after the
    # control plane is back. Our sessions back off by themselves (cpclient.backoff).
    ("grpc.use_local_subchannel_pool", 1),
)


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsSettings:
    """PEM bytes: the CA to trust (None: system roots) and, for mutual TLS, our cert and key."""

    ca: bytes | None = None
    cert: bytes | None = None
    key: bytes | None = None
    server_name: str | None = None

    def __post_init__(self) -> None:
        if (self.cert is None) != (self.key is None):
            raise ValueError("give both a client certificate and its key, or neither")

    @classmethod
    def from_files(cls, files: ClientTlsFiles) -> TlsSettings:
        """The settings a process's ``--control-plane-*`` TLS flags name, read and checked
        now (``runtime.errors.ConfigError`` naming the flag when a file is wrong)."""
        pem = files.load()
        return cls(ca=pem.ca, cert=pem.cert, key=pem.key, server_name=pem.server_name)


def tls_settings(files: ClientTlsFiles | None) -> TlsSettings | None:
    """``TlsSettings.from_files`` for a process's optional TLS flags (None: plain gRPC)."""
    return None if files is None else TlsSettings.from_files(files)


def open_channel(target: str, tls: TlsSettings | None = None) -> grpc.aio.Channel:
    """A new channel to ``target`` (``host:port``)."""
    options = list(CHANNEL_OPTIONS)
    if tls is None:
        return grpc.aio.insecure_channel(target, options=options)
    if tls.server_name is not None:
        options.append(("grpc.ssl_target_name_override", tls.server_name))  # type: ignore[arg-type]
    credentials = grpc.ssl_channel_credentials(
        root_certificates=tls.ca, private_key=tls.key, certificate_chain=tls.cert
    )
    return grpc.aio.secure_channel(target, credentials, options=options)


def auth_metadata(token: str) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {token}"),)
