"""Wire app versions to manifest values: a node runs what the control plane assigns with the
same code that runs a manifest from disk.

The wire form names modules by sha256; the module bytes come from the node's module store,
so a ``ModuleSpec.source`` here is only the content address (``<sha256>.wasm``). A wire app
that does not hold together (a route to an unknown module, a duplicate name) is refused
with an ``ApplyError`` the session turns into a NACK.
"""

from __future__ import annotations

from pathlib import Path

from cpclient.errors import ApplyError
from manifest import AppManifest, ModuleSpec, Route, RouteTable
from manifest.model import DEFAULT_MAX_OUTPUT_BYTES, DEFAULT_MEMORY_BYTES, DEFAULT_TIMEOUT_S, Abi
from protos.edgecdn.v1 import apps_pb2, common_pb2

ABI_NAMES: dict[int, Abi] = {
    common_pb2.ABI_UNSPECIFIED: "wagi",
    common_pb2.ABI_WAGI: "wagi",
    common_pb2.ABI_REACTOR: "reactor",
}


def manifest_from_app_version(app: apps_pb2.AppVersion) -> AppManifest:
    """The manifest value of a wire app version; ApplyError("invalid_app") when inconsistent."""
    label = f"{app.name}@{app.version}"
    modules: dict[str, ModuleSpec] = {}
    for ref in app.modules:
        if ref.name in modules:
            raise ApplyError(code="invalid_app", reason=f"{label}: module {ref.name!r} is listed twice")
        if ref.abi not in ABI_NAMES:
            raise ApplyError(
                code="invalid_app", reason=f"{label}: module {ref.name!r} has unknown ABI {ref.abi}"
            )
        modules[ref.name] = ModuleSpec(
            name=ref.name,
            source=Path(f"{ref.sha256}.wasm"),
            abi=ABI_NAMES[ref.abi],
            memory_bytes=ref.memory_bytes or DEFAULT_MEMORY_BYTES,
            timeout_s=ref.timeout.ToNanoseconds() / 1e9 if ref.HasField("timeout") else DEFAULT_TIMEOUT_S,
            max_output_bytes=DEFAULT_MAX_OUTPUT_BYTES,
            env=tuple(sorted(ref.env.items())),
            allowed_outbound_hosts=tuple(ref.allowed_outbound_hosts),
            sha256=ref.sha256,
        )
    routes = []
    for route in app.routes:
        target = route.WhichOneof("target")
        if not route.path.startswith("/") or target is None:
            raise ApplyError(code="invalid_app", reason=f"{label}: route {route.path!r} is incomplete")
        if target == "module" and route.module not in modules:
            raise ApplyError(
                code="invalid_app",
                reason=f"{label}: route {route.path} names unknown module {route.module!r}",
            )
        routes.append(
            Route(
                path=route.path,
                module=route.module or None,
                origin=route.origin if target == "origin" else None,
            )
        )
    return AppManifest(
        name=app.name,
        version=app.version,
        routes=tuple(routes),
        modules=modules,
        source_path=f"{label} (assigned by the control plane)",
        table=RouteTable.build(routes),
    )
