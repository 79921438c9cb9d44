"""Every process that dials the control plane takes the same TLS flags, and refuses a wrong
file before it serves, with the flag's name (runtime.tls)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from edge_node.__main__ import parse_config as edge_node_config
from iot_gateway.__main__ import parse_config as gateway_config
from router.__main__ import parse_config as router_config
from simulator.k8s.pki import make_pki

Parse = Callable[[Sequence[str] | None], tuple[Any, str]]
PROCESSES: dict[str, tuple[Parse, list[str]]] = {
    "edge-node": (edge_node_config, ["--region", "eu-central-1", "--token", "t0ken-node"]),
    "edge-router": (router_config, ["--token", "t0ken-router"]),
    "iot-gateway": (gateway_config, ["--mqtt", "mqtt://127.0.0.1:1883", "--mqtt-user", "u",
                                     "--mqtt-password", "p", "--token", "t0ken-gw"]),
}  # fmt: skip


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    make_pki(folder, namespace="edgecdn")
    return folder


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_the_flags_reach_the_configuration(process: str, pki: Path) -> None:
    parse, base = PROCESSES[process]
    config, _ = parse([
        *base, "--control-plane", "127.0.0.1:7000", "--control-plane-ca", str(pki / "ca.crt"),
        "--control-plane-cert", str(pki / "client.crt"), "--control-plane-key", str(pki / "client.key"),
    ])  # fmt: skip
    assert config.control_plane_tls.cert == pki / "client.crt"
    plain, _ = parse([*base, "--control-plane", "127.0.0.1:7000"])
    assert plain.control_plane_tls is None


@pytest.mark.parametrize("process", sorted(PROCESSES))
def test_a_wrong_file_stops_the_process_naming_the_flag(
    process: str, pki: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    parse, base = PROCESSES[process]
    with pytest.raises(SystemExit) as exited:
        parse([
            *base, "--control-plane", "127.0.0.1:7000", "--control-plane-cert", str(pki / "client.crt"),
            "--control-plane-key", str(pki / "operator.key"),
        ])  # fmt: skip
    assert exited.value.code == 2
    assert capsys.readouterr().err.strip() == (
        f"{process}: --control-plane-key: is not the private key of --control-plane-cert's certificate"
    )
    # Without --control-plane (the router then needs another source of nodes).
    inventory = ["--edge", "eu-central-1=http://127.0.0.1:9"] if process == "edge-router" else []
    with pytest.raises(SystemExit):
        parse([*base, *inventory, "--control-plane-ca", str(pki / "ca.crt")])
    assert "need --control-plane" in capsys.readouterr().err
