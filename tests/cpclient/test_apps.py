"""Manifest <-> wire app versions: what an operator registers is what a node runs."""

from __future__ import annotations

import pytest

from cpclient import ApplyError
from cpclient.apps import app_from_manifest, manifest_from_app_version
from manifest import load_manifest
from protos.edgecdn.v1 import apps_pb2
from tests.conftest import REPO_ROOT

GEO_HELLO = REPO_ROOT / "handlers" / "geo-hello" / "app.toml"


def test_round_trip_keeps_routes_limits_and_grants() -> None:
    original = load_manifest(GEO_HELLO)
    wire, blobs = app_from_manifest(original)
    back = manifest_from_app_version(wire)
    assert (back.name, back.version) == (original.name, original.version)
    assert [(r.path, r.module, r.origin) for r in back.routes] == [
        (r.path, r.module, r.origin) for r in original.routes
    ]
    for name, spec in original.modules.items():
        got = back.modules[name]
        assert (got.abi, got.memory_bytes, got.timeout_s, got.max_output_bytes, got.env) == (
            spec.abi, spec.memory_bytes, spec.timeout_s, spec.max_output_bytes, spec.env,
        )  # fmt: skip
        assert got.sha256 in blobs
    assert back.modules["sensor-stats"].max_output_bytes == 64 * 1024, "max_output reaches the node"
    assert back.match("/hello/x") == back.match("/hello/y")


def test_route_to_an_unknown_module_is_refused() -> None:
    wire = apps_pb2.AppVersion(name="a", version="1", routes=[apps_pb2.Route(path="/x", module="ghost")])
    with pytest.raises(ApplyError, match="unknown module 'ghost'") as refused:
        manifest_from_app_version(wire)
    assert refused.value.code == "invalid_app"


def test_duplicate_module_is_refused() -> None:
    ref = apps_pb2.ModuleRef(name="m", sha256="0" * 64)
    wire = apps_pb2.AppVersion(name="a", version="1", modules=[ref, ref])
    with pytest.raises(ApplyError, match="listed twice"):
        manifest_from_app_version(wire)


def test_route_without_target_is_refused() -> None:
    wire = apps_pb2.AppVersion(name="a", version="1", routes=[apps_pb2.Route(path="/x")])
    with pytest.raises(ApplyError, match="incomplete"):
        manifest_from_app_version(wire)
