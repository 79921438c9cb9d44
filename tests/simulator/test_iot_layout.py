"""The world's IoT half: the broker's engine and users, and a gateway process per region."""

from __future__ import annotations

import stat
from pathlib import Path

from geo.world import load_world
from runtime.ready import ReadyReport
from simulator.iot_layout import (
    MqttPlan,
    broker_engine,
    broker_spec,
    ensure_mqtt_users,
    gateway_ids,
    gateway_plans,
)
from tests.conftest import REPO_ROOT

WORLD = load_world(REPO_ROOT / "deploy" / "local" / "world.toml")
PLAN = MqttPlan(
    url="mqtt://127.0.0.1:1883", engine="amqtt", passwords={"gateway": "g" * 24, "control-plane": "c" * 24}
)


def test_engines_speak_their_mqtt_version() -> None:
    assert broker_engine("amqtt") == "amqtt"
    assert broker_engine("mosquitto") == "mosquitto"
    assert broker_engine("auto") in {"mosquitto", "amqtt"}
    assert PLAN.protocol == "3.1.1"
    assert MqttPlan(url=PLAN.url, engine="mosquitto", passwords=PLAN.passwords).protocol == "5"


def test_broker_users_are_kept_private_and_stable(tmp_path: Path) -> None:
    path = tmp_path / "mqtt.json"
    first = ensure_mqtt_users(path)
    assert set(first) == {"gateway", "control-plane"}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_mqtt_users(path) == first
    path.write_text('{"gateway": "short"}')
    assert ensure_mqtt_users(path) != first  # unusable: made anew, not half-used


def test_the_broker_restarts_on_its_port(tmp_path: Path) -> None:
    spec = broker_spec(users_file=tmp_path / "u.json", data_dir=tmp_path, engine="mosquitto")
    assert spec.pin is not None
    pinned = list(
        spec.pin(spec.argv, ReadyReport(service="b", pid=1, addresses={"mqtt": "mqtt://127.0.0.1:41883"}))
    )
    assert pinned[pinned.index("--port") + 1] == "41883"
    assert pinned[pinned.index("--engine") + 1] == "mosquitto"


def test_a_gateway_process_per_region_with_its_passwords_in_the_environment(tmp_path: Path) -> None:
    links = {region.id: f"127.0.0.1:{5000 + i}" for i, region in enumerate(WORLD.regions)}
    plans = gateway_plans(WORLD, mqtt=PLAN, control_plane=links, gateway_token="tok", state_dir=tmp_path)
    assert [plan.region for plan in plans] == [region.id for region in WORLD.regions if region.gateways]
    for plan in plans:
        argv = list(plan.spec.argv)
        assert argv[argv.index("--control-plane") + 1] == links[plan.region]
        assert argv[argv.index("--mqtt-protocol") + 1] == "3.1.1"
        assert argv[argv.index("--mqtt-user") + 1] == "gateway"
        assert "g" * 24 not in " ".join(argv)  # never on a command line
        assert plan.spec.env["IOT_GATEWAY_MQTT_PASSWORD"] == "g" * 24
        assert plan.spec.env["IOT_GATEWAY_TOKEN"] == "tok"
        assert argv[argv.index("--gateway-id") + 1] == plan.gateway_ids[0]
        assert plan.spec.pin is not None
        pinned = list(
            plan.spec.pin(
                plan.spec.argv, ReadyReport(service="g", pid=1, addresses={"http": "http://127.0.0.1:7"})
            )
        )
        assert pinned[pinned.index("--http-port") + 1] == "7"


def test_many_gateways_share_a_process_with_numbered_ids() -> None:
    assert gateway_ids("ap-northeast-2", 3) == [
        "ap-northeast-2-gw-1",
        "ap-northeast-2-gw-2",
        "ap-northeast-2-gw-3",
    ]
