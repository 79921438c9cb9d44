"""CLI conventions: environment defaults, repeated flags, clean failures."""

from __future__ import annotations

import pytest

from runtime.cli import add_flag, add_switch, new_parser, split_csv


def test_environment_overrides_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_PORT", "81")
    parser = new_parser("t", "test")
    add_flag(parser, "--port", env="T_PORT", default=0, convert=int, help="port")
    assert parser.parse_args([]).port == 81
    assert parser.parse_args(["--port", "82"]).port == 82


def test_repeated_flag_replaces_environment_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T_PROXY", "10.0.0.0/8,127.0.0.1/32")
    parser = new_parser("t", "test")
    add_flag(parser, "--trusted-proxy", env="T_PROXY", default=[], repeated=True, help="cidr")
    assert parser.parse_args([]).trusted_proxy == ["10.0.0.0/8", "127.0.0.1/32"]
    assert parser.parse_args(["--trusted-proxy", "a", "--trusted-proxy", "b"]).trusted_proxy == ["a", "b"]


def test_bad_environment_value_fails_cleanly(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("T_PORT", "eighty")
    parser = new_parser("t", "test")
    with pytest.raises(SystemExit) as exit_info:
        add_flag(parser, "--port", env="T_PORT", default=0, convert=int, help="port")
    assert exit_info.value.code == 2
    assert capsys.readouterr().err.startswith("t: $T_PORT='eighty'")


@pytest.mark.parametrize(("value", "expected"), [("1", True), ("yes", True), ("0", False), ("", False)])
def test_switch_from_environment(monkeypatch: pytest.MonkeyPatch, value: str, expected: bool) -> None:
    monkeypatch.setenv("T_ON", value)
    parser = new_parser("t", "test")
    add_switch(parser, "--on", env="T_ON", help="on")
    assert parser.parse_args([]).on is expected


def test_split_csv() -> None:
    assert split_csv(["a,b", " c ", ""]) == ("a", "b", "c")
