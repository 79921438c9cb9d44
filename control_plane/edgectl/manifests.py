"""Turn an app manifest (``manifest`` package) into the wire ``AppVersion`` plus module bytes."""

from __future__ import annotations

import hashlib

from google.protobuf.duration_pb2 import Duration

from manifest import AppManifest, read_module
from protos.edgecdn.v1 import apps_pb2, common_pb2

ABIS: dict[str, common_pb2.Abi.ValueType] = {"wagi": common_pb2.ABI_WAGI, "reactor": common_pb2.ABI_REACTOR}


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
