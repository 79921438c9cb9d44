"""``edgectl gateways`` end to end: a real control-plane process started with the --mqtt flags,
a real broker, test peers speaking the gateway side of the contract."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from control_plane.edgectl.cli import main
from cpclient.gateways import GatewayClient
from cpclient.operator import OperatorClient
from mqtt_broker.server import mosquitto_binary
from protos.edgecdn.v1 import gateways_pb2
from simulator.supervisor import ChildSpec, Supervisor
from tests.control_plane.gateways.peers import Fake, Peers, until
from tests.mqtt_brokers import BrokerUnderTest, start_broker

GATEWAYS = [
    Fake(gateway_id="ap-northeast-2-gw-1", region="ap-northeast-2", labels={"site": "plant-3"}),
    Fake(gateway_id="eu-west-1-gw-1", region="eu-west-1"),
]


@pytest.fixture(autouse=True)
def _no_ambient_target(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in ("EDGECTL_SERVER", "EDGECTL_TOKEN", "EDGECTL_CA_CERT", "EDGECTL_CLIENT_CERT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("EDGECDN_STATE_DIR", str(tmp_path / "no-world"))
    monkeypatch.setenv("COLUMNS", "80")


@pytest.fixture
async def broker(supervisor: Supervisor, tmp_path: Path) -> BrokerUnderTest:
    return await start_broker(supervisor, tmp_path, "amqtt" if mosquitto_binary() is None else "mosquitto")


@pytest.fixture
async def target(supervisor: Supervisor, broker: BrokerUnderTest, tmp_path: Path) -> AsyncIterator[list[str]]:
    data_dir = tmp_path / "cp"
    child = await supervisor.start(
        ChildSpec(
            name="control-plane",
            argv=(
                sys.executable,
                "-m",
                "control_plane",
                "--port",
                "0",
                "--data-dir",
                str(data_dir),
                *broker.flags("control-plane"),
            ),
        )
    )
    token = json.loads((data_dir / "tokens.json").read_text())["operator"]
    async with Peers(broker.link("gateway"), GATEWAYS[:1]), Peers(broker.link("gateway"), GATEWAYS[1:]) as eu:
        target = [f"--server={child.report.addresses['grpc']}", f"--token={token}"]
        await until(lambda: _count(target), timeout_s=20)
        eu.kill()
        yield target


async def _listed(target: list[str]) -> list[gateways_pb2.GatewayInfo]:
    server, token = (flag.split("=", 1)[1] for flag in target)
    async with OperatorClient(server, token) as operator:
        return list((await GatewayClient(operator).list_gateways()).gateways)


async def _count(target: list[str]) -> bool:
    return len(await _listed(target)) == 2


async def _offline(target: list[str]) -> bool:
    return any(not g.online for g in await _listed(target))


async def edgectl(*argv: str) -> int:
    return await asyncio.to_thread(main, list(argv))


async def test_list_show_and_ping(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    await until(lambda: _offline(target))
    capsys.readouterr()
    assert await edgectl(*target, "gateways", "list", "-o", "json") == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(g["gateway_id"], g["region"], g["online"]) for g in listed] == [
        ("ap-northeast-2-gw-1", "ap-northeast-2", True),
        ("eu-west-1-gw-1", "eu-west-1", False),
    ]
    assert listed[0]["module_sha256"] == "ab" * 32
    assert await edgectl(*target, "gateways", "list") == 0
    out = capsys.readouterr().out
    assert "ap-northeast-2-gw-1" in out
    assert "eu-west-1-gw-1: offline (connection lost)" in out
    assert max(len(line) for line in out.splitlines()) <= 80
    assert await edgectl(*target, "gateways", "show", "ap-northeast-2-gw-1", "-o", "json") == 0
    assert json.loads(capsys.readouterr().out)["labels"] == {"site": "plant-3"}

    assert await edgectl(*target, "gateways", "ping", "--label", "site=plant-3", "-o", "json") == 0
    (result,) = json.loads(capsys.readouterr().out)["results"]
    assert (result["gateway_id"], result["ok"], result["status"]["gateway_id"]) == (
        "ap-northeast-2-gw-1", True, "ap-northeast-2-gw-1",
    )  # fmt: skip
    # Any gateway that fails or times out: every result shown, and exit 1.
    assert await edgectl(*target, "gateways", "ping", "--all", "--timeout", "2s") == 1
    captured = capsys.readouterr()
    assert "ap-northeast-2-gw-1" in captured.out
    assert "gateway offline since" in captured.out
    assert "1 timed out" in captured.err


async def test_refusals(target: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    assert await edgectl(*target, "gateways", "ping", "--gateway", "nope") == 1
    assert capsys.readouterr().err.strip() == "edgectl: unknown gateway id: nope"
    assert await edgectl(*target, "gateways", "update-module", "cd" * 32, "--all") == 1
    assert "is not in the registry" in capsys.readouterr().err
    assert await edgectl(*target, "gateways", "set-interval", "2h", "--all") == 1
    assert "rejected: set_sample_interval.interval" in capsys.readouterr().err
    assert await edgectl(*target, "gateways", "ping") == 2
    assert "choose gateways" in capsys.readouterr().err
