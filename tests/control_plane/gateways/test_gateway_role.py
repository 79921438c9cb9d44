"""The ``gateway`` token role: it may download OTA modules by digest and export its spans,
nothing else."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from control_plane.auth import METHOD_ROLES, ROLES, load_tokens_file, required_roles


def test_gateway_is_a_role() -> None:
    assert "gateway" in ROLES


def test_gateway_may_only_download_modules_and_export_spans() -> None:
    allowed = {method for method, roles in METHOD_ROLES.items() if "gateway" in roles}
    assert allowed == {
        "/edgecdn.v1.ModuleService/DownloadModule",
        "/opentelemetry.proto.collector.trace.v1.TraceService/Export",
    }
    assert "gateway" not in (required_roles("/edgecdn.v1.Future/Unlisted") or frozenset())


@pytest.mark.parametrize(
    ("method", "roles"),
    [
        ("/edgecdn.v1.GatewayService/ListGateways", {"viewer", "operator"}),
        ("/edgecdn.v1.GatewayService/SendGatewayCommand", {"operator"}),
    ],
)
def test_gateway_service_roles(method: str, roles: set[str]) -> None:
    assert set(required_roles(method) or ()) == roles


@pytest.mark.parametrize("suffix", [".json", ".toml"])
def test_tokens_file_accepts_gateway(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"tokens{suffix}"
    if suffix == ".json":
        path.write_text(json.dumps({"gateway": ["gw-token-1", "gw-token-2"]}))
    else:
        path.write_text('[[tokens]]\nname = "gw-1"\nrole = "gateway"\ntoken = "gw-token-1"\n')
    table = load_tokens_file(path)
    principal = table.lookup("gw-token-1")
    assert principal is not None
    assert (principal.name, principal.role) in (("gateway", "gateway"), ("gw-1", "gateway"))
