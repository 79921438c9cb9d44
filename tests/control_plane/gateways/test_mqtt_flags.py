"""The --mqtt, --mqtt-user, --mqtt-password and --mqtt-protocol flags (iotwire.link's, env
CONTROL_PLANE_MQTT_*), validated once, by BrokerLink."""

from __future__ import annotations

import pytest

from control_plane.__main__ import parse_config
from iotwire.link import BrokerLink
from runtime.errors import ConfigError


def test_mqtt_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROL_PLANE_MQTT_PASSWORD", "s3cret-pw")
    monkeypatch.setenv("CONTROL_PLANE_MQTT_PROTOCOL", "3.1.1")
    config, _ = parse_config(["--mqtt", "mqtt://127.0.0.1:1883", "--mqtt-user", "control-plane"])
    assert config.mqtt == BrokerLink(
        url="mqtt://127.0.0.1:1883", username="control-plane", password="s3cret-pw", protocol="3.1.1"
    )
    assert "s3cret-pw" not in repr(config)


def test_mqtt_off_by_default() -> None:
    config, _ = parse_config([])
    assert config.mqtt is None


@pytest.mark.parametrize("url", ["http://x:1", "127.0.0.1:1883", "mqtt://"])
def test_bad_mqtt_url(url: str) -> None:
    with pytest.raises(ConfigError, match="--mqtt"):
        BrokerLink(url=url, username="control-plane", password="pw")


@pytest.mark.parametrize(
    "argv",
    [
        ["--mqtt-user", "control-plane"],
        ["--mqtt", "mqtt://127.0.0.1:1883"],
        ["--mqtt", "ftp://x", "--mqtt-user", "u", "--mqtt-password", "p"],
    ],
)
def test_bad_flags_exit_with_a_message(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_config(argv)
    assert exited.value.code != 0
    assert "--mqtt" in capsys.readouterr().err
