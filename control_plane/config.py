"""The control plane's one frozen configuration, built once from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from runtime.errors import ConfigError

MAX_PORT = 65535


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPlaneConfig:
    """Where the control plane listens and how it reports readiness."""

    host: str = "127.0.0.1"
    port: int = 0
    ready_file: Path | None = None
    grace_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError(field="--host", reason="must not be empty")
        if not 0 <= self.port <= MAX_PORT:
            raise ConfigError(field="--port", reason=f"{self.port} is not a TCP port (0..{MAX_PORT})")
        if self.grace_seconds < 0:
            raise ConfigError(field="--grace", reason="must not be negative")
