"""The broker process's one frozen configuration."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from runtime.errors import ConfigError

MAX_PORT = 65535
Engine = Literal["auto", "mosquitto", "amqtt"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerConfig:
    """Where the broker listens, which users it knows, and which broker runs."""

    host: str = "127.0.0.1"
    port: int = 0
    users: dict[str, str] = field(default_factory=dict)
    data_dir: Path = Path(".edgecdn/mqtt")
    engine: Engine = "auto"
    ready_file: Path | None = None
    # TLS (mqtts://) with this certificate and key; with ``client_ca`` too, clients must
    # present a certificate it signed (mutual TLS), besides their password.
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= MAX_PORT:
            raise ConfigError(field="--port", reason=f"{self.port} is not a TCP port (0..{MAX_PORT})")
        if self.engine not in ("auto", "mosquitto", "amqtt"):
            raise ConfigError(
                field="--engine", reason=f"must be auto, mosquitto or amqtt (got {self.engine!r})"
            )
        if not self.users:
            raise ConfigError(
                field="--users", reason="a JSON file of user -> password is required (no anonymous access)"
            )
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ConfigError(
                field="--tls-cert/--tls-key", reason="give both a certificate and its key, or neither"
            )
        if self.client_ca is not None and self.tls_cert is None:
            raise ConfigError(field="--client-ca", reason="needs --tls-cert and --tls-key")
        for path, flag in (
            (self.tls_cert, "--tls-cert"),
            (self.tls_key, "--tls-key"),
            (self.client_ca, "--client-ca"),
        ):
            if path is not None and not path.is_file():
                raise ConfigError(field=flag, reason=f"{path} is not a readable file")

    @property
    def tls(self) -> bool:
        return self.tls_cert is not None

    @property
    def scheme(self) -> str:
        return "mqtts" if self.tls else "mqtt"
