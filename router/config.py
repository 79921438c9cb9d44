"""The router's one frozen configuration, built once from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from geo.forwarding import IPNetwork
from httpfront.server import ClientTimeouts
from router.health import HealthSettings
from runtime.errors import ConfigError
from runtime.tls import ClientTlsFiles, check_tls_needs_control_plane

MAX_PORT = 65535
WanMode = Literal["model", "off"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RouterConfig:
    """Where the router listens, where its edge inventory comes from, and how it judges nodes."""

    world: Path
    router_id: str = "router"
    host: str = "127.0.0.1"
    port: int = 0
    # A port of their own for /metrics and /_router/... (the public port keeps /healthz);
    # None: everything on --port, as on one machine.
    admin_port: int | None = None
    edges: tuple[str, ...] = ()
    edges_file: Path | None = None
    control_plane: str | None = None
    token: str = ""
    # TLS (mutual, with a client certificate) for the inventory watch and span export; None: plain.
    control_plane_tls: ClientTlsFiles | None = None
    admin_token: str = ""  # empty: the fault-injection endpoints are disabled
    wan: WanMode = "model"
    trusted_proxies: tuple[IPNetwork, ...] = ()
    geo_dbs: tuple[Path, ...] = ()
    geo_cache_dir: Path = Path(".edgecdn/geo")
    health: HealthSettings = field(default_factory=HealthSettings)
    client_timeouts: ClientTimeouts = field(default_factory=ClientTimeouts)
    upstream_timeout_s: float = 30.0
    trace_sample_ratio: float = 1.0
    ready_file: Path | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.port <= MAX_PORT:
            raise ConfigError(field="--port", reason=f"{self.port} is not a TCP port (0..{MAX_PORT})")
        if self.admin_port is not None and not 0 <= self.admin_port <= MAX_PORT:
            raise ConfigError(
                field="--admin-port", reason=f"{self.admin_port} is not a TCP port (0..{MAX_PORT})"
            )
        if self.admin_port is not None and self.admin_port == self.port != 0:
            raise ConfigError(field="--admin-port", reason="must differ from --port")
        if not self.router_id:
            raise ConfigError(field="--router-id", reason="must not be empty")
        sources = sum((bool(self.edges), self.edges_file is not None, self.control_plane is not None))
        if sources == 0:
            raise ConfigError(
                field="--edge",
                reason="the router needs edge nodes: --edge REGION=URL, --edges-file or --control-plane",
            )
        if sources > 1:
            raise ConfigError(
                field="--edge", reason="use one inventory source: --edge, --edges-file or --control-plane"
            )
        if self.control_plane is not None and not self.token:
            raise ConfigError(field="--token", reason="is required with --control-plane")
        check_tls_needs_control_plane(self.control_plane_tls, self.control_plane)
        if any(char.isspace() or not char.isprintable() for char in self.admin_token):
            raise ConfigError(
                field="--admin-token",
                reason="must be printable, without spaces (it is sent as 'Bearer TOKEN')",
            )
        if self.wan not in ("model", "off"):
            raise ConfigError(field="--wan", reason=f"must be model or off (got {self.wan!r})")
        if not self.upstream_timeout_s > 0:
            raise ConfigError(field="--upstream-timeout", reason="must be positive")
        if not 0.0 <= self.trace_sample_ratio <= 1.0:
            raise ConfigError(field="--trace-sample-ratio", reason="must be within [0, 1]")
