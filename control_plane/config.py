"""The control plane's one frozen configuration, built once from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.errors import ConfigError

MAX_PORT = 65535


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPlaneConfig:
    """Where the control plane listens, where it keeps state, and who may call it.

    ``data_dir=None`` keeps state in a temporary directory that is removed at exit.
    ``tokens_file=None`` generates one token per role into ``<data_dir>/tokens.json``
    (reused on the next start). TLS is on when ``tls_cert`` and ``tls_key`` are set;
    ``client_ca`` additionally requires client certificates signed by it (mutual TLS).
    """

    host: str = "127.0.0.1"
    port: int = 0
    ready_file: Path | None = None
    grace_seconds: float = 2.0
    data_dir: Path | None = None
    tokens_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    heartbeat_interval_s: float = 1.0
    missed_heartbeats_allowed: int = 3

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError(field="--host", reason="must not be empty")
        if not 0 <= self.port <= MAX_PORT:
            raise ConfigError(field="--port", reason=f"{self.port} is not a TCP port (0..{MAX_PORT})")
        if self.grace_seconds < 0:
            raise ConfigError(field="--grace", reason="must not be negative")
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError(field="--tls-cert/--tls-key", reason="give both or neither")
        if self.client_ca is not None and self.tls_cert is None:
            raise ConfigError(field="--client-ca", reason="needs --tls-cert and --tls-key")
        for name, path in (
            ("--tokens", self.tokens_file),
            ("--tls-cert", self.tls_cert),
            ("--tls-key", self.tls_key),
            ("--client-ca", self.client_ca),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(field=name, reason=f"{path} is not a readable file")
        if not 0.01 <= self.heartbeat_interval_s <= 3600:
            raise ConfigError(field="--heartbeat-interval", reason="must be within [0.01, 3600] seconds")
        if self.missed_heartbeats_allowed < 1:
            raise ConfigError(field="--missed-heartbeats", reason="must be at least 1")
