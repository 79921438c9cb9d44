"""The world's IoT half, as pure plans: the MQTT broker, its two users, and one gateway
process per region that simulates the region's ``gateways`` (docs/iot.md).

The broker runs Mosquitto when it is installed (what users run) and amqtt otherwise; the
engine is chosen here, once, because its clients must know which MQTT version it speaks
(Mosquitto 5, amqtt 3.1.1). Passwords never go on a command line: each process gets its
own in the environment.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from geo.world import World
from iotwire.link import Protocol
from simulator.layout import WORLD_TRACE_ENV, ExtraFlags, pin_flag
from simulator.supervisor import ChildSpec
from simulator.world_app import ensure_secrets

BROKER_NAME = "mqtt-broker"
BrokerEngine = Literal["mosquitto", "amqtt"]
ENGINE_CHOICES = ("auto", "mosquitto", "amqtt")
PROTOCOL_OF: Mapping[BrokerEngine, Protocol] = {"mosquitto": "5", "amqtt": "3.1.1"}
# The broker users of docs/iot.md: gateways, and the control plane (edge nodes use it too).
MQTT_USERS = ("gateway", "control-plane")
SENSOR_STATS = Path("handlers/sensor-stats/sensor_stats.wasm")


@dataclass(frozen=True, slots=True, kw_only=True)
class MqttPlan:
    """The running broker as its clients need to know it."""

    url: str
    engine: BrokerEngine
    passwords: Mapping[str, str] = field(repr=False)

    @property
    def protocol(self) -> Protocol:
        return PROTOCOL_OF[self.engine]

    def client_flags(self, user: str, *, env_prefix: str) -> ExtraFlags:
        """A client process's ``--mqtt*`` flags, and its password for the environment."""
        return ExtraFlags(
            argv=("--mqtt", self.url, "--mqtt-user", user, "--mqtt-protocol", self.protocol),
            env={f"{env_prefix}_MQTT_PASSWORD": self.passwords[user]},
        )


def broker_engine(choice: str) -> BrokerEngine:
    """``auto``: Mosquitto when its binary is installed (Debian puts it in /usr/sbin)."""
    if choice == "mosquitto":
        return "mosquitto"
    if choice == "auto" and (shutil.which("mosquitto") or Path("/usr/sbin/mosquitto").is_file()):
        return "mosquitto"
    return "amqtt"


def ensure_mqtt_users(path: Path) -> dict[str, str]:
    """The world's broker passwords, kept in ``path`` (mode 0600) across runs."""
    return ensure_secrets(path, MQTT_USERS)


def broker_spec(*, users_file: Path, data_dir: Path, engine: BrokerEngine) -> ChildSpec:
    return ChildSpec(
        name=BROKER_NAME,
        argv=(
            sys.executable, "-m", "mqtt_broker", "--host", "127.0.0.1", "--port", "0",
            "--users", str(users_file), "--data-dir", str(data_dir), "--engine", engine,
        ),
        pin=pin_flag("--port", "mqtt"),
    )  # fmt: skip


def gateway_ids(region_id: str, count: int) -> list[str]:
    """``REGION-gw-1`` .. ``REGION-gw-N``, the ids the region's gateway process simulates."""
    return [f"{region_id}-gw-{i}" for i in range(1, count + 1)]


@dataclass(frozen=True, slots=True, kw_only=True)
class GatewayPlan:
    """One process that simulates a region's gateways."""

    region: str
    gateway_ids: tuple[str, ...]
    spec: ChildSpec


def gateway_plans(
    world: World,
    *,
    mqtt: MqttPlan,
    control_plane: Mapping[str, str],
    gateway_token: str,
    state_dir: Path,
) -> list[GatewayPlan]:
    """One ``iot-gateway`` process per region with gateways; they fetch modules over the
    same fault-relay link as the region's edge nodes (``control_plane`` by region)."""
    plans = []
    for region in world.regions:
        if region.gateways <= 0:
            continue
        ids = gateway_ids(region.id, region.gateways)
        # One gateway keeps its exact id; N gateways are ID-1 .. ID-N (iot-gateway --count).
        identity = ("--gateway-id", ids[0]) if len(ids) == 1 else ("--gateway-id", f"{region.id}-gw")
        flags = mqtt.client_flags("gateway", env_prefix="IOT_GATEWAY")
        argv = (
            sys.executable, "-m", "iot_gateway", *flags.argv,
            "--control-plane", control_plane[region.id],
            "--region", region.id, *identity, "--count", str(len(ids)),
            "--module", str(SENSOR_STATS),
            "--seed", str(world.seed),
            *(("--heat-wave", region.heat_wave) if region.heat_wave else ()),
            "--state-dir", str(state_dir),
            "--http-port", "0",
        )  # fmt: skip
        plans.append(
            GatewayPlan(
                region=region.id,
                gateway_ids=tuple(ids),
                spec=ChildSpec(
                    name=f"iot-gateway {region.id}",
                    argv=argv,
                    env={**WORLD_TRACE_ENV, **flags.env, "IOT_GATEWAY_TOKEN": gateway_token},
                    pin=pin_flag("--http-port", "http"),
                ),
            )
        )
    return plans
