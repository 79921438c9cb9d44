"""The control plane's one frozen configuration, built once from flags and environment."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from iotwire.link import BrokerLink
from manifest import OriginPolicy
from runtime.errors import ConfigError
from tracing.errors import ExportSettingsError
from tracing.settings import parse_endpoint

MAX_PORT = 65535


@dataclass(frozen=True, slots=True, kw_only=True)
class ControlPlaneConfig:
    """Where the control plane listens, where it keeps state, and who may call it.

    ``data_dir=None`` keeps state in a temporary directory that is removed at exit.
    ``tokens_file=None`` generates one token per role into ``<data_dir>/tokens.json``
    (reused on the next start). TLS is on when ``tls_cert`` and ``tls_key`` are set;
    ``client_ca`` additionally requires client certificates signed by it (mutual TLS).
    Traces: the store keeps at most ``trace_max_spans`` spans for ``trace_retention_s``;
    statistics keep ``stats_bucket_s`` buckets for ``stats_max_window_s``; ``otlp_forward``
    (host:port or URL) receives a copy of everything collected.
    """

    host: str = "127.0.0.1"
    port: int = 0
    ready_file: Path | None = None
    grace_seconds: float = 2.0
    data_dir: Path | None = None
    # Compiled uploads (None: <data_dir>/compiled); the local world shares it with its nodes,
    # so a 37 MB component is compiled once on the machine, not once per process.
    module_cache_dir: Path | None = None
    tokens_file: Path | None = None
    tls_cert: Path | None = None
    tls_key: Path | None = None
    client_ca: Path | None = None
    heartbeat_interval_s: float = 1.0
    missed_heartbeats_allowed: int = 3
    trace_max_spans: int = 200_000
    trace_retention_s: float = 3600.0
    stats_bucket_s: float = 5.0
    stats_max_window_s: float = 900.0
    otlp_forward: str | None = None
    trace_sample_ratio: float = 1.0
    # Regions the world names (a world file's); with those nodes have reported, the regions a
    # deploy or a rollout may name without --allow-empty.
    world_regions: tuple[str, ...] = ()
    # The IoT gateways' MQTT broker (URL, user, password, protocol; BrokerLink validates it);
    # None: GatewayService refuses every call.
    mqtt: BrokerLink | None = None
    # --allow-origin-network: CIDRs or host names an app's origin may use although the
    # manifest rules refuse them by default (link-local and cloud metadata addresses).
    allow_origin_networks: tuple[str, ...] = ()
    # Prometheus /metrics over HTTP on a port of its own; None: no such endpoint.
    # ``metrics_host`` None: the gRPC --host.
    metrics_port: int | None = None
    metrics_host: str | None = None

    @property
    def origin_policy(self) -> OriginPolicy:
        return OriginPolicy.parse(self.allow_origin_networks)

    def __post_init__(self) -> None:
        if not self.host:
            raise ConfigError(field="--host", reason="must not be empty")
        if not 0 <= self.port <= MAX_PORT:
            raise ConfigError(field="--port", reason=f"{self.port} is not a TCP port (0..{MAX_PORT})")
        self._check_metrics()
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
        try:
            OriginPolicy.parse(self.allow_origin_networks)
        except ValueError as exc:
            raise ConfigError(field="--allow-origin-network", reason=str(exc)) from exc
        self._check_traces()

    def _check_metrics(self) -> None:
        if self.metrics_port is not None and not 0 <= self.metrics_port <= MAX_PORT:
            raise ConfigError(
                field="--metrics-port", reason=f"{self.metrics_port} is not a TCP port (0..{MAX_PORT})"
            )
        if self.metrics_host is not None and not self.metrics_host:
            raise ConfigError(field="--metrics-host", reason="must not be empty (leave it out for --host)")
        if self.metrics_host is not None and self.metrics_port is None:
            raise ConfigError(field="--metrics-host", reason="needs --metrics-port")

    def _check_traces(self) -> None:
        if self.trace_max_spans < 1:
            raise ConfigError(field="--trace-max-spans", reason="must be at least 1")
        if self.trace_retention_s <= 0:
            raise ConfigError(field="--trace-retention", reason="must be positive")
        if self.stats_bucket_s <= 0:
            raise ConfigError(field="--stats-bucket", reason="must be positive")
        if self.stats_max_window_s < self.stats_bucket_s:
            raise ConfigError(field="--stats-max-window", reason="must be at least --stats-bucket")
        if not 0.0 <= self.trace_sample_ratio <= 1.0:
            raise ConfigError(field="--trace-sample-ratio", reason="must be within [0, 1]")
        if self.otlp_forward is not None:
            try:
                parse_endpoint(self.otlp_forward, setting="--otlp-forward")
            except ExportSettingsError as exc:
                raise ConfigError(field="--otlp-forward", reason=exc.reason) from exc
