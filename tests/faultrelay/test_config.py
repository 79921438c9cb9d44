"""Flags and configuration: link specs, validation, and the CLI's ``prog: message`` errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from faultrelay.__main__ import main, parse_config
from faultrelay.config import LinkSpec, RelayConfig
from runtime.errors import ConfigError


def test_link_specs_parse() -> None:
    assert LinkSpec.parse("cp-ap-northeast-2=7001:127.0.0.1:50051") == LinkSpec(
        name="cp-ap-northeast-2", listen_port=7001, upstream_host="127.0.0.1", upstream_port=50051
    )
    ipv6 = LinkSpec.parse("cp=0:[::1]:50051")
    assert (ipv6.upstream_host, ipv6.upstream) == ("::1", "[::1]:50051")
    assert LinkSpec.parse("cp=0:control-plane.local:443").upstream == "control-plane.local:443"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("cp-7001:127.0.0.1:50051", "is not NAME=LISTEN_PORT:UPSTREAM_HOST:UPSTREAM_PORT"),
        ("cp=7001:50051", "is not NAME=LISTEN_PORT:UPSTREAM_HOST:UPSTREAM_PORT"),
        ("cp=x:127.0.0.1:50051", "ports must be numbers"),
        ("cp=70000:127.0.0.1:50051", "listen port 70000 is not 0..65535"),
        ("cp=0:127.0.0.1:0", "upstream port 0 is not 1..65535"),
        ("=0:127.0.0.1:1", "link name '' must be"),
        ("c p=0:127.0.0.1:1", "link name 'c p' must be"),
        ("admin=0:127.0.0.1:1", "'admin' is reserved"),
    ],
)
def test_bad_link_specs(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match="--link") as caught:
        LinkSpec.parse(text)
    assert message in str(caught.value)


def test_config_validation() -> None:
    link = LinkSpec.parse("a=7001:127.0.0.1:1")
    with pytest.raises(ConfigError, match="at least one link"):
        RelayConfig(links=(), token="t")
    with pytest.raises(ConfigError, match="unique: a"):
        RelayConfig(links=(link, LinkSpec.parse("a=0:127.0.0.1:2")), token="t")
    with pytest.raises(ConfigError, match="listen ports used twice: 7001"):
        RelayConfig(links=(link, LinkSpec.parse("b=7001:127.0.0.1:2")), token="t")
    with pytest.raises(ConfigError, match="listen ports used twice: 7001"):
        RelayConfig(links=(link,), token="t", admin_port=7001)
    with pytest.raises(ConfigError, match="--token"):
        RelayConfig(links=(link,), token="")
    with pytest.raises(ConfigError, match="--connect-timeout"):
        RelayConfig(links=(link,), token="t", connect_timeout_s=float("nan"))
    # Two links on "any free port" are fine.
    RelayConfig(links=(LinkSpec.parse("a=0:127.0.0.1:1"), LinkSpec.parse("b=0:127.0.0.1:1")), token="t")


def test_flags_and_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("EDGE_FAULTRELAY_TOKEN", "from-env")
    monkeypatch.setenv("EDGE_FAULTRELAY_LINKS", "a=0:127.0.0.1:1,b=0:127.0.0.1:2")
    config, level = parse_config(["--state-file", str(tmp_path / "s.json"), "--log-level", "debug"])
    assert config.token == "from-env"
    assert [link.name for link in config.links] == ["a", "b"]
    assert config.state_file == tmp_path / "s.json"
    assert level == "debug"
    config, _ = parse_config(["--token", "from-flag", "--link", "c=0:127.0.0.1:3"])
    assert config.token == "from-flag"
    assert [link.name for link in config.links] == ["c"]  # flags replace the environment's list


def test_cli_errors_are_one_line(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.delenv("EDGE_FAULTRELAY_TOKEN", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["--link", "cp=0:127.0.0.1:50051"])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        "edge-faultrelay: --token: the admin API needs a token: --token or $EDGE_FAULTRELAY_TOKEN\n"
    )
    with pytest.raises(SystemExit):
        main(["--token", "t", "--link", "cp=0:nowhere"])
    assert capsys.readouterr().err.startswith("edge-faultrelay: --link: 'cp=0:nowhere' is not NAME=")


def test_help_does_not_show_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("EDGE_FAULTRELAY_TOKEN", "s3cret-token")
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert "EDGE_FAULTRELAY_TOKEN" in out
    assert "s3cret-token" not in out
