"""Flags and environment into the one frozen config; bad values are a clear message, exit 2."""

from __future__ import annotations

import pytest

from iot_gateway.__main__ import parse_config
from iot_gateway.metrics import GatewayMetrics

MQTT = ("--mqtt", "mqtt://127.0.0.1:1883", "--mqtt-user", "gateway", "--mqtt-password", "secret-1")


def test_flags_make_the_config(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("IOT_GATEWAY_SEED", "42")
    flags = ["--region", "eu-west-1", "--gateway-id", "gw", "--count", "3", "--interval", "250ms"]
    flags += ["--heat-wave", "30s,2m", "--label", "a=1", "--label", "b=2"]
    config, _ = parse_config([*MQTT, *flags])
    assert config.gateway_ids() == ("gw-1", "gw-2", "gw-3")
    assert (config.interval_s, config.seed, config.labels) == (0.25, 42, (("a", "1"), ("b", "2")))
    assert config.heat_wave is not None
    assert (config.heat_wave.start_s, config.heat_wave.duration_s) == (30, 120)
    assert "secret-1" not in repr(config)
    single, _ = parse_config([*MQTT, "--gateway-id", "only"])
    assert single.gateway_ids() == ("only",)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        ((), "--mqtt"),
        ((*MQTT, "--region", "EU"), "--region"),
        ((*MQTT, "--sensors", "temperature,wind"), "--sensors"),
        ((*MQTT, "--control-plane", "127.0.0.1:1"), "--token"),
        ((*MQTT, "--heat-wave", "30s"), "--heat-wave"),
        ((*MQTT, "--label", "novalue"), "--label"),
    ],
)
def test_bad_flags_exit_2_with_a_message(
    capsys: pytest.CaptureFixture[str], argv: tuple[str, ...], message: str
) -> None:
    with pytest.raises(SystemExit) as exited:
        parse_config(list(argv))
    assert exited.value.code == 2
    assert message in capsys.readouterr().err


def test_refusals_are_counted_always_and_logged_once_a_minute(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    metrics = GatewayMetrics(clock=lambda: now[0])
    for at in (0.0, 1.0, 59.0, 61.0):
        now[0] = at
        metrics.refused("bad_command", "not JSON")
    metrics.refused("not_wasm", "garbage")
    assert 'iot_gateway_refusals_total{reason="bad_command"} 4.0' in metrics.exposition().decode()
    assert [r.getMessage().split(":")[0] for r in caplog.records] == [
        "refused (bad_command)", "refused (bad_command)", "refused (not_wasm)"
    ]  # fmt: skip
