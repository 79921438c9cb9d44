"""The world's real broker process (``python -m mqtt_broker``) for tests: Mosquitto or amqtt
on a free loopback port, with the world's two users. Parametrize over ``ENGINES`` to run a
test against both brokers; ``BrokerUnderTest.link(user)`` is how a process under test reaches it."""

from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from iotwire.link import BrokerLink, Protocol
from mqtt_broker.server import mosquitto_binary
from simulator.supervisor import ChildSpec, RunningChild, Supervisor

USERS = {"gateway": "gateway-secret-1", "control-plane": "control-plane-secret-1"}
ENGINES = [
    pytest.param("mosquitto", marks=pytest.mark.skipif(mosquitto_binary() is None, reason="no mosquitto")),
    "amqtt",
]
PROTOCOL_OF: dict[str, Protocol] = {"mosquitto": "5", "amqtt": "3.1.1"}


@dataclass(frozen=True, slots=True, kw_only=True)
class BrokerUnderTest:
    """A running broker child of ``supervisor`` and how to reach it."""

    engine: str
    child: RunningChild

    @property
    def url(self) -> str:
        return self.child.report.addresses["mqtt"]

    @property
    def protocol(self) -> Protocol:
        return PROTOCOL_OF[self.engine]

    def link(self, user: str = "control-plane") -> BrokerLink:
        return BrokerLink(url=self.url, username=user, password=USERS[user], protocol=self.protocol)

    def flags(self, user: str) -> tuple[str, ...]:
        """Command-line flags of a process that connects as ``user`` (password on the command
        line only in tests; the world passes it in the environment)."""
        return ("--mqtt", self.url, "--mqtt-user", user, "--mqtt-password", USERS[user],
                "--mqtt-protocol", self.protocol)  # fmt: skip


async def start_broker(
    supervisor: Supervisor, tmp_path: Path, engine: str, *, port: int = 0
) -> BrokerUnderTest:
    """Start a broker (``port``: pin one, e.g. to restart on the same address)."""
    users = tmp_path / "mqtt-users.json"
    users.write_text(json.dumps(USERS))
    users.chmod(0o600)
    child = await supervisor.start(
        ChildSpec(
            name=f"mqtt-broker-{engine}",
            argv=(
                sys.executable,
                "-m",
                "mqtt_broker",
                "--users",
                str(users),
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / f"mqtt-{engine}"),
                "--engine",
                engine,
            ),
            ready_timeout_s=20,
        )
    )
    return BrokerUnderTest(engine=engine, child=child)
