"""The fault relay's one frozen configuration, built once from flags and environment."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path

from runtime.errors import ConfigError

MAX_PORT = 65535
ADMIN_ADDRESS_KEY = "admin"
_LINK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,62}")


@dataclass(frozen=True, slots=True, kw_only=True)
class LinkSpec:
    """One relayed link: listen at ``listen_port``, relay to ``upstream_host:upstream_port``."""

    name: str
    listen_port: int
    upstream_host: str
    upstream_port: int

    def __post_init__(self) -> None:
        if not _LINK_NAME.fullmatch(self.name):
            raise ConfigError(
                field="--link",
                reason=f"link name {self.name!r} must be 1-63 letters, digits, '.', '_' or '-' "
                "(starting with a letter or digit)",
            )
        if self.name == ADMIN_ADDRESS_KEY:
            raise ConfigError(field="--link", reason=f"{ADMIN_ADDRESS_KEY!r} is reserved for the admin API")
        if not 0 <= self.listen_port <= MAX_PORT:
            raise ConfigError(
                field="--link", reason=f"{self.name}: listen port {self.listen_port} is not 0..65535"
            )
        if not 1 <= self.upstream_port <= MAX_PORT:
            raise ConfigError(
                field="--link", reason=f"{self.name}: upstream port {self.upstream_port} is not 1..65535"
            )
        if not self.upstream_host:
            raise ConfigError(field="--link", reason=f"{self.name}: the upstream host is empty")

    @classmethod
    def parse(cls, text: str) -> LinkSpec:
        """``NAME=LISTEN_PORT:UPSTREAM_HOST:UPSTREAM_PORT`` (an IPv6 host in brackets)."""
        name, sep, rest = text.partition("=")
        listen, _, upstream = rest.partition(":")
        host, _, port = upstream.rpartition(":")
        if not sep or not listen or not host or not port:
            raise ConfigError(
                field="--link", reason=f"{text!r} is not NAME=LISTEN_PORT:UPSTREAM_HOST:UPSTREAM_PORT"
            )
        try:
            listen_port, upstream_port = int(listen), int(port)
        except ValueError:
            raise ConfigError(field="--link", reason=f"{text!r}: ports must be numbers") from None
        host = host[1:-1] if host.startswith("[") and host.endswith("]") else host
        return cls(name=name, listen_port=listen_port, upstream_host=host, upstream_port=upstream_port)

    @property
    def upstream(self) -> str:
        return host_port(self.upstream_host, self.upstream_port)


@dataclass(frozen=True, slots=True, kw_only=True)
class RelayConfig:
    """The links to relay, where the admin API listens, its token, and where state is kept."""

    links: tuple[LinkSpec, ...]
    token: str
    host: str = "127.0.0.1"
    admin_port: int = 0
    connect_timeout_s: float = 5.0
    state_file: Path | None = None
    ready_file: Path | None = None

    def __post_init__(self) -> None:
        if not self.links:
            raise ConfigError(field="--link", reason="at least one link is required")
        names = [link.name for link in self.links]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ConfigError(field="--link", reason=f"link names must be unique: {', '.join(twice)}")
        ports = [link.listen_port for link in self.links if link.listen_port] + [self.admin_port or -1]
        shared = sorted({port for port in ports if port > 0 and ports.count(port) > 1})
        if shared:
            raise ConfigError(
                field="--link", reason=f"listen ports used twice: {', '.join(map(str, shared))}"
            )
        if not self.token:
            raise ConfigError(
                field="--token", reason="the admin API needs a token: --token or $EDGE_FAULTRELAY_TOKEN"
            )
        if not 0 <= self.admin_port <= MAX_PORT:
            raise ConfigError(field="--admin-port", reason=f"{self.admin_port} is not a TCP port (0..65535)")
        if not (math.isfinite(self.connect_timeout_s) and self.connect_timeout_s > 0):
            raise ConfigError(field="--connect-timeout", reason="must be a positive number of seconds")
        if not self.host:
            raise ConfigError(field="--host", reason="must not be empty")


def host_port(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
