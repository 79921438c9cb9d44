"""The load run's one frozen config, and the checks made before any request is sent.

``LoadConfig`` is built once from flags and environment (``simulator/load_cmd.py``) and
validated in ``__post_init__``; :func:`resolve_target` and :func:`check_reachable` turn a
URL into an address the engine connects to, with a clear message when it cannot.
"""

from __future__ import annotations

import ipaddress
import math
import socket
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from geo.world import World
from simulator.load.client import RequestSpec
from simulator.load.engine import EngineConfig
from simulator.load.errors import BadInputError, TargetUnreachableError
from simulator.load.plan import Plan

CHECK_TIMEOUT_S = 3.0
ADDRESSES_PER_COUNTRY = 64  # distinct source addresses per country, used in turn by its connections
MAX_WORKERS = 256


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """Where requests go: the URL as given, the address connected to, and the path prefix."""

    url: str
    host: str
    port: int
    host_header: str
    path_prefix: str

    def request_path(self, path: str) -> str:
        return self.path_prefix.rstrip("/") + path


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadConfig:
    """One ``edgecdn load`` run."""

    target: Target
    plan: Plan
    request: RequestSpec
    connections: int = 64
    timeout_s: float = 10.0
    workers: int = 1
    seed: int = 1
    expect_body: str | None = None
    out: Path | None = None
    html: Path | None = None
    events: Path | None = None  # the world's events file, read for the report's markers

    def __post_init__(self) -> None:
        if self.connections < 1:
            raise BadInputError(field="--connections", reason=f"must be at least 1 (got {self.connections})")
        if not (self.timeout_s > 0 and math.isfinite(self.timeout_s)):
            raise BadInputError(field="--timeout", reason=f"must be positive (got {self.timeout_s})")
        if not 1 <= self.workers <= MAX_WORKERS:
            raise BadInputError(
                field="--workers", reason=f"must be between 1 and {MAX_WORKERS} (got {self.workers})"
            )
        if self.plan.open_loop and self.connections < self.workers:
            raise BadInputError(field="--connections", reason=f"at least one per worker ({self.workers})")


def parse_target(url: str) -> tuple[str, int, str, str]:
    """``http://host:port/prefix`` -> (host, port, host header, path prefix)."""
    try:
        parts = urlsplit(url)
        port = parts.port or 80
    except ValueError as exc:
        raise BadInputError(field="--target", reason=f"{url!r} is not a URL: {exc}") from exc
    if parts.scheme != "http":
        raise BadInputError(field="--target", reason=f"only http:// targets are supported (got {url!r})")
    if not parts.hostname:
        raise BadInputError(field="--target", reason=f"{url!r} has no host")
    host_header = parts.netloc.rpartition("@")[2]
    return parts.hostname, port, host_header, parts.path or "/"


def resolve_target(url: str) -> Target:
    """Parse ``url`` and resolve its host to one IPv4 address (once, not per connection)."""
    host, port, host_header, prefix = parse_target(url)
    try:
        address = str(ipaddress.IPv4Address(host))
    except ValueError:
        try:
            infos = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_STREAM)
        except OSError as exc:
            raise TargetUnreachableError(url=url, reason=f"cannot resolve {host}: {exc}") from exc
        address = str(infos[0][4][0])
    return Target(url=url, host=address, port=port, host_header=host_header, path_prefix=prefix)


def check_reachable(target: Target, source_address: str) -> None:
    """Connect once from ``source_address`` (a simulated client's) with a deadline."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.settimeout(CHECK_TIMEOUT_S)
            sock.bind((source_address, 0))
            sock.connect((target.host, target.port))
    except TimeoutError as exc:
        raise TargetUnreachableError(
            url=target.url, reason=f"no answer within {CHECK_TIMEOUT_S:g} s"
        ) from exc
    except OSError as exc:
        reason = exc.strerror or str(exc)
        if not ipaddress.IPv4Address(target.host).is_loopback:
            reason += (
                " (simulated clients leave from 127.N.0.0/16 loopback addresses, so the target must be local)"
            )
        raise TargetUnreachableError(url=target.url, reason=reason) from exc


def engine_config(config: LoadConfig, world: World) -> EngineConfig:
    addresses = {
        code: tuple(world.country(code).client_address(i) for i in range(1, ADDRESSES_PER_COUNTRY + 1))
        for code in config.plan.countries()
    }
    return EngineConfig(
        host=config.target.host,
        port=config.target.port,
        host_header=config.target.host_header,
        request=config.request,
        plan=config.plan,
        addresses=addresses,
        connections=config.connections,
        timeout_s=config.timeout_s,
        seed=config.seed,
        expect_body=config.expect_body,
    )
