"""mqtts:// with Mosquitto: the broker requires the deployment's client certificate and a
password; BrokerLink speaks it with --mqtt-ca/--mqtt-cert/--mqtt-key (iotwire.link)."""

from __future__ import annotations

import json
import ssl
import sys
from pathlib import Path

import aiomqtt
import pytest

from iotwire.link import BrokerLink
from mqtt_broker.config import BrokerConfig
from mqtt_broker.errors import BrokerError
from mqtt_broker.server import mosquitto_binary, mosquitto_for
from runtime.errors import ConfigError
from simulator.k8s.pki import make_pki
from simulator.supervisor import ChildSpec, Supervisor

USERS = {"gateway": "secret-gateway-1"}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    make_pki(folder, namespace="edgecdn")
    return folder


@pytest.mark.skipif(mosquitto_binary() is None, reason="mqtts:// is served by Mosquitto")
async def test_mqtts_needs_the_client_certificate_and_the_password(
    supervisor: Supervisor, tmp_path: Path, pki: Path
) -> None:
    users = tmp_path / "users.json"
    users.write_text(json.dumps(USERS))
    child = await supervisor.start(
        ChildSpec(
            name="broker-tls",
            argv=(
                sys.executable, "-m", "mqtt_broker", "--users", str(users),
                "--data-dir", str(tmp_path / "data"), "--engine", "mosquitto",
                "--tls-cert", str(pki / "mqtt-broker.crt"), "--tls-key", str(pki / "mqtt-broker.key"),
                "--client-ca", str(pki / "ca.crt"),
            ),
            ready_timeout_s=20,
        )
    )  # fmt: skip
    url = child.report.addresses["mqtt"]
    assert url.startswith("mqtts://127.0.0.1:")
    link = BrokerLink(
        url=url, username="gateway", password=USERS["gateway"],
        ca=pki / "ca.crt", cert=pki / "client.crt", key=pki / "client.key",
    )  # fmt: skip
    async with link.client("tls-ok") as client:
        await client.subscribe("edgecdn/test")
        await client.publish("edgecdn/test", b"over tls")
        async for message in client.messages:
            assert message.payload == b"over tls"
            break
    # No client certificate: the handshake fails, password or not.
    without_cert = BrokerLink(url=url, username="gateway", password=USERS["gateway"], ca=pki / "ca.crt")
    with pytest.raises((aiomqtt.MqttError, ssl.SSLError, OSError)):
        async with without_cert.client("tls-no-cert", timeout_s=5):
            pass
    # The certificate without the password: refused by the broker.
    wrong_password = BrokerLink(
        url=url, username="gateway", password="wrong-password",
        ca=pki / "ca.crt", cert=pki / "client.crt", key=pki / "client.key",
    )  # fmt: skip
    with pytest.raises(aiomqtt.MqttError):
        async with wrong_password.client("tls-bad-password", timeout_s=5):
            pass


def test_tls_files_belong_to_mqtts_urls(pki: Path) -> None:
    link = BrokerLink(url="mqtts://broker.example", username="u", password="p", ca=pki / "ca.crt")
    assert link.port == 8883
    assert link.tls_parameters() is not None
    assert BrokerLink(url="mqtt://broker.example", username="u", password="p").tls_parameters() is None
    with pytest.raises(ConfigError, match="need an mqtts:// URL"):
        BrokerLink(url="mqtt://broker.example", username="u", password="p", ca=pki / "ca.crt")
    with pytest.raises(ConfigError, match="both a client certificate and its key"):
        BrokerLink(url="mqtts://b", username="u", password="p", cert=pki / "client.crt")
    with pytest.raises(ConfigError, match=r"--mqtt-ca: .* is not a readable file"):
        BrokerLink(url="mqtts://b", username="u", password="p", ca=pki / "missing.crt")


def test_the_broker_refuses_half_a_tls_configuration(pki: Path, tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--tls-cert/--tls-key: give both"):
        BrokerConfig(users=USERS, tls_cert=pki / "mqtt-broker.crt")
    with pytest.raises(ConfigError, match="--client-ca: needs --tls-cert and --tls-key"):
        BrokerConfig(users=USERS, client_ca=pki / "ca.crt")
    config = BrokerConfig(
        users=USERS, tls_cert=pki / "mqtt-broker.crt", tls_key=pki / "mqtt-broker.key", engine="amqtt"
    )
    with pytest.raises(BrokerError, match="TLS is served by Mosquitto only"):
        mosquitto_for(config)
