"""`edgecdn k8s pki`: a CA and certificates a TLS stack accepts for the roles they are made for."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from runtime.errors import ConfigError
from simulator.cli import main as edgecdn
from simulator.k8s.pki import FILES, make_pki


def load(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_the_certificates_chain_to_the_ca_and_name_the_service(tmp_path: Path) -> None:
    make_pki(tmp_path, namespace="cdn", extra_names=["cp.example.com", "10.0.0.7"])
    ca = load(tmp_path / "ca.crt")
    assert ca.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    for stem, usage in (
        ("control-plane", ExtendedKeyUsageOID.SERVER_AUTH),
        ("client", ExtendedKeyUsageOID.CLIENT_AUTH),
        ("operator", ExtendedKeyUsageOID.CLIENT_AUTH),
    ):
        leaf = load(tmp_path / f"{stem}.crt")
        leaf.verify_directly_issued_by(ca)
        assert list(leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value) == [usage]
        assert not leaf.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    names = load(tmp_path / "control-plane.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    dns = names.value.get_values_for_type(x509.DNSName)
    ips = names.value.get_values_for_type(x509.IPAddress)
    assert {
        "control-plane.cdn.svc",
        "control-plane.cdn.svc.cluster.local",
        "localhost",
        "cp.example.com",
    } <= set(dns)
    assert {ipaddress.ip_address("127.0.0.1"), ipaddress.ip_address("10.0.0.7")} <= set(ips)


def test_keys_are_private_and_certificates_readable(tmp_path: Path) -> None:
    written = make_pki(tmp_path, namespace="edgecdn")
    assert sorted(path.name for path in written) == sorted(FILES)
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o600 if path.suffix == ".key" else 0o644), path


def test_an_existing_ca_is_kept_unless_forced(tmp_path: Path) -> None:
    make_pki(tmp_path, namespace="edgecdn")
    before = (tmp_path / "ca.crt").read_bytes()
    with pytest.raises(ConfigError, match="exists: keep the CA you have, or pass --force"):
        make_pki(tmp_path, namespace="edgecdn")
    assert (tmp_path / "ca.crt").read_bytes() == before
    make_pki(tmp_path, namespace="edgecdn", force=True)
    assert (tmp_path / "ca.crt").read_bytes() != before


def test_the_command_writes_the_files_and_refuses_a_bad_name(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert edgecdn(["k8s", "pki", "--out", str(tmp_path / "pki")]) == 0
    assert isinstance(load(tmp_path / "pki" / "client.crt").public_key(), ec.EllipticCurvePublicKey)
    assert "wrote" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exited:
        edgecdn(["k8s", "pki", "--out", str(tmp_path / "other"), "--san", "not a name"])
    assert exited.value.code == 2
    assert "--san: 'not a name' is neither an IP address nor a DNS name" in capsys.readouterr().err
