"""The edge node's one frozen configuration, built once from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from geo.forwarding import IPNetwork
from iotwire.link import BrokerLink
from runtime.errors import ConfigError
from runtime.signing import TrustedKeys
from runtime.tls import ClientTlsFiles, check_tls_needs_control_plane
from wasm_host.outbound_policy import NO_ALLOWANCE, NetworkAllowance

MAX_PORT = 65535
MAX_WORKERS = 256
MiB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class EdgeNodeConfig:
    """Who the node is, what it serves, where it listens, and its request limits."""

    app: Path | None
    region: str
    world: Path
    node_id: str
    host: str = "127.0.0.1"
    port: int = 0
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # Link-local and metadata networks/hosts handlers' outbound HTTP may reach (none by default).
    allow_outbound_networks: NetworkAllowance = NO_ALLOWANCE
    geo_dbs: tuple[Path, ...] = ()
    data_dir: Path = Path(".edgecdn/edge-node")
    max_body_bytes: int = 10 * MiB
    max_header_bytes: int = 16 * 1024
    response_cache_bytes: int = 64 * MiB
    cache_dir: Path | None = None  # the HTTP cache's disk tier (httpcache.disk), when given
    cache_dir_bytes: int = 1024 * MiB
    geo_cache_dir_override: Path | None = None
    module_cache_dir_override: Path | None = None
    control_plane: str | None = None
    token: str = ""
    # TLS (mutual, with a client certificate) to the control plane: the session, module
    # downloads and span export; None: plain gRPC (runtime.tls).
    control_plane_tls: ClientTlsFiles | None = None
    # Longest wait between reconnects to the control plane (exponential back-off with jitter
    # up to this); a small world can afford a short one, a fleet of thousands wants the default.
    reconnect_max_s: float = 10.0
    capacity_rps: float = 5000.0
    trace_sample_ratio: float = 1.0
    ready_file: Path | None = None
    # The world's MQTT broker, as user control-plane: the node follows its region's gateways
    # and serves them at /_edge/iot (edge_node.iot). None: /_edge/iot answers 503.
    mqtt: BrokerLink | None = None
    # Processes serving the node's port (SO_REUSEPORT), as nginx's worker_processes; above 1,
    # this process supervises them and holds the node's one control-plane session.
    workers: int = 1
    # Set in a worker: the inherited socket to its supervisor (edge_node.worker_link).
    worker_fd: int | None = None
    worker_index: int = 0
    # Public keys (--trusted-key) one of which must have signed every module the control plane
    # assigns, checked before it is compiled; none: signatures are not required.
    trusted_keys: TrustedKeys = field(default_factory=TrustedKeys)

    def __post_init__(self) -> None:
        if not self.region:
            raise ConfigError(field="--region", reason="is required")
        if not self.node_id:
            raise ConfigError(field="--node-id", reason="must not be empty")
        if not 0 <= self.port <= MAX_PORT:
            raise ConfigError(field="--port", reason=f"{self.port} is not a TCP port (0..{MAX_PORT})")
        if self.max_body_bytes < 0:
            raise ConfigError(field="--max-body-bytes", reason="must not be negative")
        if self.max_header_bytes < 1024:
            raise ConfigError(field="--max-header-bytes", reason="must be at least 1024")
        self._check_control_plane()
        if self.capacity_rps <= 0:
            raise ConfigError(field="--capacity-rps", reason="must be positive")
        if not 0.2 <= self.reconnect_max_s <= 3600:
            raise ConfigError(field="--reconnect-max", reason="must be within [0.2, 3600] seconds")
        if not 0.0 <= self.trace_sample_ratio <= 1.0:
            raise ConfigError(field="--trace-sample-ratio", reason="must be within [0, 1]")
        if self.response_cache_bytes < 0:
            raise ConfigError(field="--cache-bytes", reason="must not be negative")
        if self.cache_dir_bytes < 0:
            raise ConfigError(field="--cache-dir-bytes", reason="must not be negative")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise ConfigError(field="--workers", reason=f"must be within [1, {MAX_WORKERS}]")

    def _check_control_plane(self) -> None:
        if self.control_plane is not None and not self.token:
            raise ConfigError(field="--token", reason="is required with --control-plane")
        check_tls_needs_control_plane(self.control_plane_tls, self.control_plane)

    @property
    def module_cache_dir(self) -> Path:
        """Where compiled modules are cached ahead of time (shared by nodes of one machine)."""
        return self.module_cache_dir_override or self.data_dir / "compiled"

    @property
    def module_store_dir(self) -> Path:
        """Module blobs fetched from the control plane, by sha256 (verified when read)."""
        return self.data_dir / "modules"

    @property
    def geo_cache_dir(self) -> Path:
        """Where the world's geo database is built (shared when a supervisor pre-builds it)."""
        return self.geo_cache_dir_override or self.data_dir / "geo"
