"""The gateway process's one frozen configuration, built from flags and ``IOT_GATEWAY_*``."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from iot_gateway.sensors import SENSORS, HeatWave, SensorName
from iotwire.link import BrokerLink
from iotwire.topics import valid_id
from runtime.errors import ConfigError
from runtime.signing import TrustedKeys
from runtime.tls import ClientTlsFiles, check_tls_needs_control_plane

DEFAULT_MODULE = Path("handlers/sensor-stats/sensor_stats.wasm")
MAX_COUNT = 5000


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayConfig:
    link: BrokerLink
    region: str
    gateway_id: str
    control_plane: str | None = None
    token: str = field(default="", repr=False)
    # TLS (mutual, with a client certificate) for module downloads and span export; None: plain.
    control_plane_tls: ClientTlsFiles | None = None
    count: int = 1
    module: Path = DEFAULT_MODULE
    sensors: tuple[SensorName, ...] = ("temperature", "humidity")
    interval_s: float = 1.0
    batch: int = 10
    seed: int = 0
    heat_wave: HeatWave | None = None
    labels: tuple[tuple[str, str], ...] = ()
    state_dir: Path = Path(".edgecdn")
    http_host: str = "127.0.0.1"
    http_port: int = 0
    ready_file: Path | None = None
    probation: int = 3
    buffer_readings: int = 100_000
    warning_above_c: float = 30.0
    module_timeout_s: float = 0.5
    module_memory_bytes: int = 32 * 1024 * 1024
    status_every_s: float = 10.0
    # Public keys (--trusted-key) one of which must have signed every module taken over the
    # air; none: signatures are not required. The --module file itself is the operator's own.
    trusted_keys: TrustedKeys = field(default_factory=TrustedKeys)

    def __post_init__(self) -> None:
        for name, value in (("--region", self.region), ("--gateway-id", self.gateway_id)):
            if not valid_id(value):
                raise ConfigError(field=name, reason=f"{value!r} must match [a-z0-9-]{{1,63}}")
        if not 1 <= self.count <= MAX_COUNT:
            raise ConfigError(field="--count", reason=f"must be 1..{MAX_COUNT}")
        if self.count > 1 and not valid_id(f"{self.gateway_id}-{self.count}"):
            raise ConfigError(field="--gateway-id", reason="too long for the numbered ids of --count")
        if not self.sensors or any(s not in SENSORS for s in self.sensors):
            raise ConfigError(field="--sensors", reason=f"a comma-separated subset of {','.join(SENSORS)}")
        if len(set(self.sensors)) != len(self.sensors):
            raise ConfigError(field="--sensors", reason="a sensor is named twice")
        if not 0.0001 <= self.interval_s <= 3600:
            raise ConfigError(field="--interval", reason="must be from 100us to 1h")
        if not 1 <= self.batch <= 1000:
            raise ConfigError(field="--batch", reason="must be 1..1000 samples")
        if self.control_plane is not None and not self.token:
            raise ConfigError(
                field="--token", reason="downloading modules from the control plane needs a token"
            )
        check_tls_needs_control_plane(self.control_plane_tls, self.control_plane)
        if not 0 <= self.http_port <= 65535:
            raise ConfigError(field="--http-port", reason="must be 0..65535")
        if not 0 <= self.probation <= 1000:
            raise ConfigError(field="--probation", reason="must be 0..1000 batches")
        if self.buffer_readings < 1:
            raise ConfigError(field="--buffer", reason="must be positive")

    def gateway_ids(self) -> tuple[str, ...]:
        """``--gateway-id`` itself with ``--count 1``, else ``ID-1`` .. ``ID-N``."""
        if self.count == 1:
            return (self.gateway_id,)
        return tuple(f"{self.gateway_id}-{n}" for n in range(1, self.count + 1))
