"""runtime.tls: the --control-plane-* TLS flags, and files refused at start-up with the flag's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from cpclient import TlsSettings, tls_settings
from runtime.cli import new_parser
from runtime.errors import ConfigError
from runtime.tls import (
    ClientTlsFiles,
    add_control_plane_tls_flags,
    check_tls_needs_control_plane,
    control_plane_tls_from_args,
)
from simulator.k8s.pki import make_pki


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("pki")
    make_pki(folder, namespace="edgecdn")
    return folder


def parse(argv: list[str]) -> ClientTlsFiles | None:
    parser = new_parser("test", "test")
    add_control_plane_tls_flags(parser, env_prefix="TEST_PROCESS")
    return control_plane_tls_from_args(parser.parse_args(argv))


def test_no_flag_is_plain_grpc_and_any_flag_turns_tls_on(pki: Path) -> None:
    assert parse([]) is None
    assert parse(["--control-plane-ca", str(pki / "ca.crt")]) == ClientTlsFiles(ca=pki / "ca.crt")
    files = parse([
        "--control-plane-ca", str(pki / "ca.crt"), "--control-plane-cert", str(pki / "client.crt"),
        "--control-plane-key", str(pki / "client.key"),
        "--control-plane-server-name", "control-plane.edgecdn.svc",
    ])  # fmt: skip
    assert files is not None
    settings = TlsSettings.from_files(files)
    assert settings.ca == (pki / "ca.crt").read_bytes()
    assert settings.cert == (pki / "client.crt").read_bytes()
    assert settings.key == (pki / "client.key").read_bytes()
    assert settings.server_name == "control-plane.edgecdn.svc"
    assert tls_settings(None) is None


def test_the_environment_sets_the_flags(pki: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TEST_PROCESS_CONTROL_PLANE_CA", str(pki / "ca.crt"))
    assert parse([]) == ClientTlsFiles(ca=pki / "ca.crt")


def test_a_certificate_needs_its_key_and_the_key_its_certificate(pki: Path) -> None:
    with pytest.raises(ConfigError, match="both a client certificate and its key"):
        ClientTlsFiles(cert=pki / "client.crt")
    with pytest.raises(ConfigError, match="both a client certificate and its key"):
        ClientTlsFiles(key=pki / "client.key")
    with pytest.raises(
        ConfigError, match="--control-plane-key: is not the private key of --control-plane-cert"
    ):
        ClientTlsFiles(cert=pki / "client.crt", key=pki / "operator.key").load()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        (lambda d: ClientTlsFiles(ca=d / "missing.crt"), "--control-plane-ca: cannot read .*missing.crt"),
        (lambda d: ClientTlsFiles(ca=d / "client.key"), "--control-plane-ca: is not a PEM certificate"),
        (
            lambda d: ClientTlsFiles(cert=d / "client.key", key=d / "client.key"),
            "--control-plane-cert: is not a PEM certificate",
        ),
        (
            lambda d: ClientTlsFiles(cert=d / "client.crt", key=d / "client.crt"),
            "--control-plane-key: is not an unencrypted PEM private key",
        ),
    ],
)
def test_wrong_files_are_refused_naming_the_flag(pki: Path, files: object, message: str) -> None:
    assert callable(files)
    with pytest.raises(ConfigError, match=message):
        files(pki).load()


def test_tls_flags_without_a_control_plane_are_a_mistake(pki: Path) -> None:
    files = ClientTlsFiles(ca=pki / "ca.crt")
    check_tls_needs_control_plane(None, None)
    check_tls_needs_control_plane(files, "cp:7000")
    with pytest.raises(ConfigError, match="need --control-plane"):
        check_tls_needs_control_plane(files, None)
    with pytest.raises(ConfigError, match="--control-plane-server-name: must not be empty"):
        ClientTlsFiles(ca=pki / "ca.crt", server_name=" ")
