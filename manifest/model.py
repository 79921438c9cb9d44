"""The manifest as frozen values: the app, its routes, and the modules routes point at."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from manifest.routes import RouteTable

Abi = Literal["wagi", "reactor", "wasi-http"]
# The ABI of a ``[component.NAME]`` table (Spin's name for what a ``[module.NAME]`` is here).
COMPONENT_ABI: Abi = "wasi-http"

DEFAULT_MEMORY_BYTES = 16 * 1024 * 1024
DEFAULT_TIMEOUT_S = 0.1
DEFAULT_MAX_OUTPUT_BYTES = 1024 * 1024
# Outbound HTTP per handler invocation (docs/manifest.md): requests, body bytes both ways,
# and each request's timeout (never more than what is left of the handler's own).
DEFAULT_OUTBOUND_REQUESTS = 10
DEFAULT_OUTBOUND_BYTES = 4 * 1024 * 1024
DEFAULT_OUTBOUND_TIMEOUT_S = 5.0


@dataclass(frozen=True, slots=True, kw_only=True)
class ModuleSpec:
    """``[module.NAME]``: a wasm file, how to call it, and what it is allowed."""

    name: str
    source: Path  # absolute: resolved against the manifest's directory
    abi: Abi = "wagi"
    memory_bytes: int = DEFAULT_MEMORY_BYTES
    timeout_s: float = DEFAULT_TIMEOUT_S
    max_output_bytes: int = DEFAULT_MAX_OUTPUT_BYTES
    env: tuple[tuple[str, str], ...] = ()
    allowed_outbound_hosts: tuple[str, ...] = ()
    outbound_requests: int = DEFAULT_OUTBOUND_REQUESTS
    outbound_bytes: int = DEFAULT_OUTBOUND_BYTES
    outbound_timeout_s: float = DEFAULT_OUTBOUND_TIMEOUT_S
    sha256: str | None = None  # when given, the source must hash to it


@dataclass(frozen=True, slots=True, kw_only=True)
class Route:
    """``[[route]]``: a path served by a module, or by an origin through the CDN cache."""

    path: str
    module: str | None = None
    origin: str | None = None

    @property
    def is_prefix(self) -> bool:
        """True for "/api/..." routes."""
        return self.path.endswith("/...")


@dataclass(frozen=True, slots=True, kw_only=True)
class AppManifest:
    """A whole app: what the control plane rolls out and an edge node serves."""

    name: str
    version: str
    description: str = ""
    routes: tuple[Route, ...] = ()
    modules: dict[str, ModuleSpec] = field(default_factory=dict)
    source_path: str = "<manifest>"
    table: RouteTable[Route] = field(default_factory=RouteTable, repr=False, compare=False)

    def match(self, path: str) -> Route | None:
        """The route for ``path``: exact beats prefix, the longest prefix wins."""
        return self.table.match(path)

    def module_for(self, route: Route) -> ModuleSpec | None:
        """The module a route runs (None for origin routes)."""
        return self.modules[route.module] if route.module is not None else None
