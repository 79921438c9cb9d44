"""The world's broker process, with both brokers: it listens, knows the world's users, and
refuses anonymous clients and wrong passwords."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aiomqtt
import pytest

from mqtt_broker.errors import BrokerConfigError
from mqtt_broker.passwords import check_users, mosquitto_line
from mqtt_broker.server import mosquitto_binary
from simulator.supervisor import ChildSpec, Supervisor

USERS = {"gateway": "secret-gateway-1", "control-plane": "secret-cp-1"}
ENGINES = [
    pytest.param("mosquitto", marks=pytest.mark.skipif(mosquitto_binary() is None, reason="no mosquitto")),
    "amqtt",
]


@pytest.mark.parametrize("engine", ENGINES)
async def test_the_broker_knows_its_users_and_refuses_everyone_else(
    supervisor: Supervisor, tmp_path: Path, engine: str
) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    child = await supervisor.start(
        ChildSpec(
            name=f"broker-{engine}",
            argv=(
                sys.executable,
                "-m",
                "mqtt_broker",
                "--users",
                str(users),
                "--data-dir",
                str(tmp_path / "data"),
                "--engine",
                engine,
            ),
            ready_timeout_s=20,
        )
    )
    url = child.report.addresses["mqtt"]
    assert url.startswith("mqtt://127.0.0.1:")
    port = int(url.rsplit(":", 1)[1])
    async with aiomqtt.Client("127.0.0.1", port, username="gateway", password=USERS["gateway"]) as client:
        await client.publish("edgecdn/v1/test", b"hello", qos=1)
    for credentials in ({"username": "gateway", "password": "wrong-password"}, {}):
        with pytest.raises(aiomqtt.MqttError):
            async with aiomqtt.Client("127.0.0.1", port, **credentials):  # type: ignore[arg-type]
                pass


def test_without_users_it_refuses_to_start(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "mqtt_broker", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 2
    assert "mqtt-broker: --users:" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("users", "problem"),
    [({}, "no users"), ({"a b": "password1"}, "letters, digits"), ({"gateway": "short"}, "at least 8")],
)
def test_bad_users_are_refused_with_the_reason(users: dict[str, str], problem: str) -> None:
    with pytest.raises(BrokerConfigError, match=problem):
        check_users(users)


def test_mosquitto_lines_are_pbkdf2_sha512() -> None:
    line = mosquitto_line("gateway", "secret-gateway-1", salt=b"0123456789ab")
    user, _, rest = line.partition(":")
    assert user == "gateway"
    assert rest.startswith("$7$101$MDEyMzQ1Njc4OWFi$")
