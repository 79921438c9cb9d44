"""The --mqtt, --mqtt-user and --mqtt-password flags (password also from the environment)."""

from __future__ import annotations

import pytest

from control_plane.__main__ import parse_config
from control_plane.config import ControlPlaneConfig
from runtime.errors import ConfigError


def test_mqtt_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROL_PLANE_MQTT_PASSWORD", "s3cret-pw")
    config, _ = parse_config(["--mqtt", "mqtt://127.0.0.1:1883", "--mqtt-user", "control-plane"])
    assert (config.mqtt_url, config.mqtt_user, config.mqtt_password) == (
        "mqtt://127.0.0.1:1883",
        "control-plane",
        "s3cret-pw",
    )
    assert "s3cret-pw" not in repr(config)


def test_mqtt_off_by_default() -> None:
    config, _ = parse_config([])
    assert config.mqtt_url is None


@pytest.mark.parametrize("url", ["http://x:1", "127.0.0.1:1883", "mqtt://"])
def test_bad_mqtt_url(url: str) -> None:
    with pytest.raises(ConfigError, match="--mqtt"):
        ControlPlaneConfig(mqtt_url=url)
