"""``edgecdn k8s pki``: the certificates for mutual TLS between the cluster's processes and
its control plane, made with ``cryptography`` (no openssl needed).

One private CA signs four leaf certificates, each an ECDSA P-256 key:

- ``control-plane.crt`` (server): the names the control plane's Service answers to
  (``control-plane``, ``control-plane.NS``, ``control-plane.NS.svc``, ``...svc.cluster.local``)
  plus ``localhost`` and ``127.0.0.1`` for ``kubectl port-forward``, plus any ``--san``;
- ``mqtt-broker.crt`` (server): the same for the broker's Service (``mqtt-broker...``);
- ``client.crt`` (client): what the control plane, edge nodes, the router and gateways
  present to the control plane and the broker (the Secret ``edgecdn-client-tls``);
- ``operator.crt`` (client): what ``edgectl`` presents, kept off the cluster.

Who a caller *is* and what it may do stays with its bearer token (docs/control-plane.md):
the certificates say only that a caller belongs to this deployment, and encrypt the
traffic. A production cluster would rather have cert-manager issue and renew the same
Secrets (docs/kubernetes.md); this command is for the first cluster and for the tests.
"""

from __future__ import annotations

import datetime
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from runtime.errors import ConfigError
from runtime.files import write_bytes_atomically
from simulator.k8s.options import BROKER, CONTROL_PLANE

CA_DAYS = 5 * 365
LEAF_DAYS = 365
PRIVATE_FILE_MODE = 0o600
PUBLIC_FILE_MODE = 0o644
FILES = (
    "ca.crt",
    "ca.key",
    "control-plane.crt",
    "control-plane.key",
    "mqtt-broker.crt",
    "mqtt-broker.key",
    "client.crt",
    "client.key",
    "operator.crt",
    "operator.key",
)


@dataclass(frozen=True, slots=True)
class _Issued:
    certificate: x509.Certificate
    key: ec.EllipticCurvePrivateKey


def service_names(service: str, namespace: str, extra: Iterable[str] = ()) -> list[str]:
    """The names (and addresses) a Service's certificate is valid for."""
    names = [
        service,
        f"{service}.{namespace}",
        f"{service}.{namespace}.svc",
        f"{service}.{namespace}.svc.cluster.local",
        "localhost",
        "127.0.0.1",
    ]
    for name in extra:
        if name not in names:
            names.append(name)
    return names


def make_pki(
    out: Path, *, namespace: str, extra_names: Sequence[str] = (), force: bool = False
) -> list[Path]:
    """Write the CA and the three leaf certificates with their keys into ``out``; refuses to
    overwrite an existing set unless ``force`` (a new CA would lock out every running pod)."""
    existing = [out / name for name in FILES if (out / name).exists()]
    if existing and not force:
        raise ConfigError(
            field="--out", reason=f"{existing[0]} exists: keep the CA you have, or pass --force for a new one"
        )
    for name in extra_names:
        _check_name(name)
    now = datetime.datetime.now(datetime.UTC)
    ca = _issue("EdgeCDN CA", issuer=None, now=now, days=CA_DAYS, ca=True)
    # The servers, named after their Services; the clients, after who holds them.
    leaves = [
        (service, _issue(service, issuer=ca, now=now, days=LEAF_DAYS, usage=ExtendedKeyUsageOID.SERVER_AUTH,
                         names=service_names(service, namespace, extra_names)))
        for service in (CONTROL_PLANE, BROKER)
    ] + [
        (holder, _issue(f"edgecdn-{holder}", issuer=ca, now=now, days=LEAF_DAYS,
                        usage=ExtendedKeyUsageOID.CLIENT_AUTH))
        for holder in ("client", "operator")
    ]  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for stem, issued in (("ca", ca), *leaves):
        written.append(
            _write(out / f"{stem}.crt", issued.certificate.public_bytes(serialization.Encoding.PEM))
        )
        key_pem = issued.key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        written.append(_write(out / f"{stem}.key", key_pem, mode=PRIVATE_FILE_MODE))
    return written


def _issue(
    common_name: str,
    *,
    issuer: _Issued | None,
    now: datetime.datetime,
    days: int,
    ca: bool = False,
    usage: x509.ObjectIdentifier | None = None,
    names: Sequence[str] = (),
) -> _Issued:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject if issuer is None else issuer.certificate.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # clocks of a cluster disagree a little
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=0 if ca else None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_key_usage(ca=ca), critical=True)
    )
    if usage is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    if names:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([_general_name(n) for n in names]), critical=False
        )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()), critical=False
        )
    signer = key if issuer is None else issuer.key
    return _Issued(certificate=builder.sign(signer, hashes.SHA256()), key=key)


def _key_usage(*, ca: bool) -> x509.KeyUsage:
    """Signatures (TLS 1.3 with ECDSA needs no key encipherment), and for the CA, signing certs."""
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _general_name(name: str) -> x509.GeneralName:
    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def _check_name(name: str) -> None:
    try:
        ipaddress.ip_address(name)
        return
    except ValueError:
        pass
    labels = name.split(".")
    if not name or len(name) > 253 or not all(_is_label(label) for label in labels):
        raise ConfigError(field="--san", reason=f"{name!r} is neither an IP address nor a DNS name")


def _is_label(label: str) -> bool:
    return 0 < len(label) <= 63 and label.replace("-", "").isalnum() and label[0] != "-" and label[-1] != "-"


def _write(path: Path, data: bytes, *, mode: int = PUBLIC_FILE_MODE) -> Path:
    write_bytes_atomically(path, data)  # made 0600, and so it stays for a key
    path.chmod(mode)
    return path
