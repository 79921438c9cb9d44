"""App manifests and wire app versions, both ways.

``app_from_manifest``: what an operator registers (routes and module references by sha256)
plus the module bytes to upload. ``manifest_from_app_version``: a node runs what the control
plane assigns with the same code that runs a manifest from disk.

The wire form names modules by sha256; the module bytes come from the node's module store,
so a ``ModuleSpec.source`` here is only the content address (``<sha256>.wasm``). A wire app
that does not hold together (a route to an unknown module, a duplicate name) is refused
with an ``ApplyError`` the session turns into a NACK.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration

from cpclient.errors import ApplyError
from manifest import AppManifest, ManifestError, ModuleSpec, Route, RouteTable, read_module
from manifest.model import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MEMORY_BYTES,
    DEFAULT_OUTBOUND_BYTES,
    DEFAULT_OUTBOUND_REQUESTS,
    DEFAULT_OUTBOUND_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    Abi,
)
from protos.edgecdn.v1 import apps_pb2, common_pb2

ABIS: dict[str, common_pb2.Abi.ValueType] = {
    "wagi": common_pb2.ABI_WAGI,
    "reactor": common_pb2.ABI_REACTOR,
    "wasi-http": common_pb2.ABI_WASI_HTTP,
}


def app_from_manifest(manifest: AppManifest) -> tuple[apps_pb2.AppVersion, dict[str, tuple[str, str, bytes]]]:
    """The AppVersion to register, and sha256 -> (module name, abi, bytes) of every module it uses."""
    blobs: dict[str, tuple[str, str, bytes]] = {}
    refs = []
    for name, spec in sorted(manifest.modules.items()):
        data = read_module(manifest, spec)
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = (name, spec.abi, data)
        timeout = Duration()
        timeout.FromNanoseconds(round(spec.timeout_s * 1e9))
        refs.append(
            apps_pb2.ModuleRef(
                name=name,
                sha256=digest,
                abi=ABIS[spec.abi],
                memory_bytes=spec.memory_bytes,
                timeout=timeout,
                env=dict(spec.env),
                allowed_outbound_hosts=list(spec.allowed_outbound_hosts),
                max_output_bytes=spec.max_output_bytes,
                **_outbound_limits(spec),
            )
        )
    routes = [
        apps_pb2.Route(path=r.path, module=r.module)
        if r.module is not None
        else apps_pb2.Route(path=r.path, origin=r.origin or "")
        for r in manifest.routes
    ]
    app = apps_pb2.AppVersion(name=manifest.name, version=manifest.version, routes=routes, modules=refs)
    return app, blobs


def _outbound_limits(spec: ModuleSpec) -> dict[str, Any]:
    """The outbound limits a ModuleRef carries: only those that differ from the defaults, so
    an app that sets none has the wire form (and digest) it had before they existed."""
    fields: dict[str, Any] = {}
    if spec.outbound_requests != DEFAULT_OUTBOUND_REQUESTS:
        fields["outbound_requests"] = spec.outbound_requests
    if spec.outbound_bytes != DEFAULT_OUTBOUND_BYTES:
        fields["outbound_bytes"] = spec.outbound_bytes
    if spec.outbound_timeout_s != DEFAULT_OUTBOUND_TIMEOUT_S:
        timeout = Duration()
        timeout.FromNanoseconds(round(spec.outbound_timeout_s * 1e9))
        fields["outbound_timeout"] = timeout
    return fields


ABI_NAMES: dict[int, Abi] = {
    common_pb2.ABI_UNSPECIFIED: "wagi",
    common_pb2.ABI_WAGI: "wagi",
    common_pb2.ABI_REACTOR: "reactor",
    common_pb2.ABI_WASI_HTTP: "wasi-http",
}


def app_manifest(app: apps_pb2.AppVersion, source: str = "") -> AppManifest:
    """The manifest value a wire app version stands for, unchecked against ``manifest.rules``.

    The control plane holds it to ``check_manifest`` (the rules ``edgectl`` applies); a node
    builds what it is assigned from it. ``ManifestError`` only for what the value cannot hold:
    a module named twice, an ABI number that is not one. Wire defaults: memory 0, max_output 0
    and no timeout mean the manifest's defaults; ABI_UNSPECIFIED means wagi.
    """
    label = source or f"{app.name}@{app.version}"
    modules: dict[str, ModuleSpec] = {}
    for ref in app.modules:
        if ref.name in modules:
            raise ManifestError(label, f"module.{ref.name}", f"module {ref.name!r} is listed twice")
        if ref.abi not in ABI_NAMES:
            raise ManifestError(
                label,
                f"module.{ref.name}.abi",
                f"{ref.abi} is not an ABI; use ABI_WAGI, ABI_REACTOR or ABI_WASI_HTTP",
            )
        modules[ref.name] = ModuleSpec(
            name=ref.name,
            source=Path(f"{ref.sha256}.wasm"),
            abi=ABI_NAMES[ref.abi],
            memory_bytes=ref.memory_bytes or DEFAULT_MEMORY_BYTES,
            timeout_s=ref.timeout.ToNanoseconds() / 1e9 if ref.HasField("timeout") else DEFAULT_TIMEOUT_S,
            max_output_bytes=ref.max_output_bytes or DEFAULT_MAX_OUTPUT_BYTES,
            env=tuple(sorted(ref.env.items())),
            allowed_outbound_hosts=tuple(ref.allowed_outbound_hosts),
            outbound_requests=ref.outbound_requests or DEFAULT_OUTBOUND_REQUESTS,
            outbound_bytes=ref.outbound_bytes or DEFAULT_OUTBOUND_BYTES,
            outbound_timeout_s=(
                ref.outbound_timeout.ToNanoseconds() / 1e9
                if ref.HasField("outbound_timeout")
                else DEFAULT_OUTBOUND_TIMEOUT_S
            ),
            sha256=ref.sha256,
        )
    routes = []
    for route in app.routes:
        target = route.WhichOneof("target")
        routes.append(
            Route(
                path=route.path,
                module=route.module if target == "module" else None,
                origin=route.origin if target == "origin" else None,
            )
        )
    return AppManifest(
        name=app.name,
        version=app.version,
        routes=tuple(routes),
        modules=modules,
        source_path=label,
        table=RouteTable.build(routes),
    )


def manifest_from_app_version(app: apps_pb2.AppVersion) -> AppManifest:
    """The manifest value of a wire app version; ApplyError("invalid_app") when inconsistent."""
    label = f"{app.name}@{app.version}"
    names = {ref.name for ref in app.modules}
    for route in app.routes:
        target = route.WhichOneof("target")
        if not route.path.startswith("/") or target is None:
            raise ApplyError(code="invalid_app", reason=f"{label}: route {route.path!r} is incomplete")
        if target == "module" and route.module not in names:
            raise ApplyError(
                code="invalid_app",
                reason=f"{label}: route {route.path} names unknown module {route.module!r}",
            )
    try:
        return app_manifest(app, f"{label} (assigned by the control plane)")
    except ManifestError as exc:
        raise ApplyError(code="invalid_app", reason=str(exc)) from exc
