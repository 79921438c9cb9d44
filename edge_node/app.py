"""An app as a node serves it: routes plus a sandboxed handler per module, ready to run.

Building a ``LoadedApp`` does all the slow work up front (read, verify, compile or load
the ahead-of-time artefact, link), so a swap is instant and a broken module never
replaces a working app: the error surfaces at load, not on a request.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

from edge_node.errors import ConfigLoadError
from edge_node.metrics import AppFigures
from manifest import AppManifest, ManifestError, ModuleSpec, load_manifest, read_module
from wasm_host.cache import CompiledModule
from wasm_host.component_cache import CompiledComponent, ComponentCache
from wasm_host.config import Limits
from wasm_host.engine import WasmEngine
from wasm_host.errors import WasmHostError
from wasm_host.handler import Handler, create_handler
from wasm_host.outbound import OutboundGrant, OutboundLimits


@dataclass(frozen=True, slots=True, kw_only=True)
class RouteMatch:
    """The route a path matched: its manifest pattern and its target."""

    route: str
    module: str | None
    origin: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedModule:
    """A module compiled and linked under its limits."""

    name: str
    digest: str
    abi: str
    size_bytes: int
    limits: Limits
    compiled_from: str  # "compiled", "disk" (AOT cache hit) or "memory"
    handler: Handler = field(repr=False, compare=False)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest": self.digest,
            "abi": self.abi,
            "size_bytes": self.size_bytes,
            "memory_bytes": self.limits.memory_bytes,
            "timeout_ms": round(self.limits.timeout_s * 1000, 3),
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class LoadedApp:
    """An app version with every module ready to run, the ``x-edge-app`` value that names it
    on every answer (made once, here, not per request) and the counters of its answers."""

    manifest: AppManifest
    modules: Mapping[str, LoadedModule]
    header: bytes = field(repr=False, compare=False)
    figures: AppFigures = field(repr=False, compare=False)

    @property
    def name(self) -> str:
        return self.manifest.name

    @property
    def version(self) -> str:
        return self.manifest.version

    def match(self, path: str) -> RouteMatch | None:
        route = self.manifest.match(path)
        if route is None:
            return None
        return RouteMatch(route=route.path, module=route.module, origin=route.origin)


# Visible ASCII but '%', which escapes everything else (a version is any TOML string).
_HEADER_SAFE = "".join(chr(code) for code in range(0x21, 0x7F) if chr(code) != "%")


def app_header(name: str, version: str) -> bytes:
    """The ``x-edge-app`` value naming an app version: ``NAME@VERSION``, percent-encoding
    anything that is not visible ASCII (a header value cannot carry it)."""
    return quote(f"{name}@{version}", safe=_HEADER_SAFE).encode("ascii")


def outbound_grant(spec: ModuleSpec) -> OutboundGrant | None:
    """The module's outbound HTTP grant (its ``allowed_outbound_hosts`` and limits), or None."""
    return OutboundGrant.of(
        spec.allowed_outbound_hosts,
        OutboundLimits(
            max_requests=spec.outbound_requests,
            max_bytes=spec.outbound_bytes,
            request_timeout_s=spec.outbound_timeout_s,
        ),
    )


def load_app(
    path: Path, *, engine: WasmEngine, cache: ComponentCache, figures: Callable[[str, str], AppFigures]
) -> LoadedApp:
    """Load a manifest and every module it names (standalone mode)."""
    try:
        manifest = load_manifest(path)
        sources = {name: read_module(manifest, spec) for name, spec in manifest.modules.items()}
    except ManifestError as exc:
        raise ConfigLoadError(str(exc)) from exc
    return build_app(manifest, sources, engine=engine, cache=cache, figures=figures)


def build_app(
    manifest: AppManifest,
    sources: Mapping[str, bytes],
    *,
    engine: WasmEngine,
    cache: ComponentCache,
    figures: Callable[[str, str], AppFigures],
) -> LoadedApp:
    """Compile (or load from the AOT cache) and link every module of ``manifest``;
    ``figures(name, version)`` gives the counters the app's answers go to."""
    modules: dict[str, LoadedModule] = {}
    for name, spec in manifest.modules.items():
        try:
            compiled: CompiledModule | CompiledComponent = cache.load_any(sources[name])
            limits = Limits(
                memory_bytes=spec.memory_bytes,
                timeout_s=spec.timeout_s,
                max_output_bytes=spec.max_output_bytes,
            )
            handler = create_handler(
                engine,
                compiled,
                abi=spec.abi,
                limits=limits,
                env=dict(spec.env),
                name=name,
                outbound=outbound_grant(spec),
            )
        except (WasmHostError, ValueError) as exc:
            raise ConfigLoadError(f"module {name}: {exc}", module=name) from exc
        modules[name] = LoadedModule(
            name=name,
            digest=compiled.digest,
            abi=spec.abi,
            size_bytes=compiled.size_bytes,
            limits=limits,
            compiled_from=compiled.origin,
            handler=handler,
        )
    return LoadedApp(
        manifest=manifest,
        modules=modules,
        header=app_header(manifest.name, manifest.version),
        figures=figures(manifest.name, manifest.version),
    )
