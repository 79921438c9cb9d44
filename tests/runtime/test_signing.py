"""runtime.signing: key files round-trip, signatures verify only for what was signed and by whom."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from hypothesis import given
from hypothesis import strategies as st

from runtime.signing import (
    KeyFileError,
    ModuleSignatureError,
    Signature,
    SigningKey,
    TrustedKeys,
    generate_key_pair,
    key_id,
    load_public_key,
    load_signing_key,
    load_trusted_keys,
    public_key_path,
    sign_digest,
    signature_problem,
)

DIGEST = hashlib.sha256(b"module").hexdigest()
OTHER_DIGEST = hashlib.sha256(b"another module").hexdigest()
digests = st.binary(max_size=64).map(lambda data: hashlib.sha256(data).hexdigest())


def new_key() -> SigningKey:
    private = ed25519.Ed25519PrivateKey.generate()
    raw = private.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return SigningKey(key_id=key_id(raw), private_key=private)


KEY, OTHER_KEY = new_key(), new_key()


def trusting(*keys: SigningKey) -> TrustedKeys:
    return TrustedKeys.of({k.key_id: sign_digest(k, DIGEST).public_key for k in keys})


def test_generated_keys_round_trip_and_the_private_key_is_private(tmp_path: Path) -> None:
    private = tmp_path / "keys" / "release.pem"
    kid = generate_key_pair(private)
    assert len(kid) == 16
    assert int(kid, 16) >= 0
    assert stat.S_IMODE(private.stat().st_mode) == 0o600
    assert public_key_path(private) == tmp_path / "keys" / "release.pem.pub"
    signing = load_signing_key(private)
    public_id, raw = load_public_key(public_key_path(private))
    assert signing.key_id == public_id == kid == key_id(raw) == hashlib.sha256(raw).hexdigest()[:16]
    trusted = load_trusted_keys([public_key_path(private)])
    assert trusted.check(sha256=DIGEST, name="m", signatures=[sign_digest(signing, DIGEST)]) == kid


def test_generate_refuses_to_overwrite_either_file(tmp_path: Path) -> None:
    private = tmp_path / "k.pem"
    generate_key_pair(private)
    before = private.read_bytes()
    with pytest.raises(KeyFileError, match="already exists"):
        generate_key_pair(private)
    private.unlink()
    with pytest.raises(KeyFileError, match=r"k\.pem\.pub: already exists"):
        generate_key_pair(private)
    assert not private.exists()
    assert before


def test_openssl_style_pem_keys_are_read(tmp_path: Path) -> None:
    """Keys made elsewhere (PKCS#8 / SubjectPublicKeyInfo PEM, as openssl writes) work too."""
    private = ed25519.Ed25519PrivateKey.generate()
    (tmp_path / "k.pem").write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    (tmp_path / "k.pub").write_bytes(
        private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert load_signing_key(tmp_path / "k.pem").key_id == load_public_key(tmp_path / "k.pub")[0]


def _rsa_pem(private: bool) -> bytes:
    key = rsa.generate_private_key(public_exponent=65537, key_size=1024)
    if private:
        return key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def test_bad_private_key_files_say_what_is_wrong(tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "good.pem")
    encrypted = ed25519.Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.BestAvailableEncryption(b"secret"),
    )
    cases = {
        "missing.pem": (None, "No such file"),
        "text.pem": (b"hello\n", "not a PEM file"),
        "garbled.pem": (b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n", "not a readable"),
        "rsa.pem": (_rsa_pem(private=True), "RSAPrivateKey, not an Ed25519 private key"),
        "encrypted.pem": (encrypted, "encrypted"),
        "good.pem.pub": (None, "holds a public key"),
    }
    for name, (content, expected) in cases.items():
        if content is not None:
            (tmp_path / name).write_bytes(content)
        with pytest.raises(KeyFileError, match=expected) as refused:
            load_signing_key(tmp_path / name)
        assert str(tmp_path / name) in str(refused.value)


def test_bad_public_key_files_say_what_is_wrong(tmp_path: Path) -> None:
    generate_key_pair(tmp_path / "good.pem")
    (tmp_path / "rsa.pub").write_bytes(_rsa_pem(private=False))
    (tmp_path / "empty.pub").write_bytes(b"")
    for name, expected in (
        ("good.pem", "holds a private key; give its public key"),
        ("rsa.pub", "not an Ed25519 public key"),
        ("empty.pub", "not a PEM file"),
        ("missing.pub", "No such file"),
    ):
        with pytest.raises(KeyFileError, match=expected):
            load_trusted_keys([tmp_path / name])


def test_without_trusted_keys_nothing_is_required() -> None:
    assert not TrustedKeys().required
    assert TrustedKeys().check(sha256=DIGEST, name="m", signatures=[]) is None


def test_an_unsigned_module_is_refused_naming_the_module_and_the_trusted_keys() -> None:
    with pytest.raises(ModuleSignatureError) as refused:
        trusting(KEY).check(sha256=DIGEST, name="geo-hello", signatures=[])
    assert refused.value.code == "module_unsigned"
    assert "geo-hello" in str(refused.value)
    assert DIGEST[:12] in str(refused.value)
    assert KEY.key_id in str(refused.value)


def test_a_signature_by_an_untrusted_key_is_refused_naming_the_signer() -> None:
    with pytest.raises(ModuleSignatureError) as refused:
        trusting(KEY).check(sha256=DIGEST, name="m", signatures=[sign_digest(OTHER_KEY, DIGEST)])
    assert refused.value.code == "module_untrusted_signer"
    assert OTHER_KEY.key_id in refused.value.reason
    assert KEY.key_id in refused.value.reason


def test_a_signature_of_another_digest_is_refused_as_tampered() -> None:
    moved = sign_digest(KEY, OTHER_DIGEST)
    with pytest.raises(ModuleSignatureError) as refused:
        trusting(KEY).check(sha256=DIGEST, name="m", signatures=[moved])
    assert refused.value.code == "module_bad_signature"
    assert KEY.key_id in refused.value.reason


def test_the_public_key_a_signature_carries_is_not_believed() -> None:
    """A forger signs with their own key but claims a trusted key id: the node uses its own copy."""
    forged = sign_digest(OTHER_KEY, DIGEST)
    claimed = Signature(key_id=KEY.key_id, public_key=forged.public_key, signature=forged.signature)
    with pytest.raises(ModuleSignatureError) as refused:
        trusting(KEY).check(sha256=DIGEST, name="m", signatures=[claimed])
    assert refused.value.code == "module_bad_signature"


def test_one_good_signature_among_others_is_enough() -> None:
    signatures = [sign_digest(OTHER_KEY, DIGEST), sign_digest(KEY, DIGEST)]
    assert trusting(KEY).check(sha256=DIGEST, name="m", signatures=signatures) == KEY.key_id
    assert trusting(KEY, OTHER_KEY).check(sha256=DIGEST, name="m", signatures=signatures) in {
        KEY.key_id,
        OTHER_KEY.key_id,
    }


@given(digest=digests)
def test_a_signed_digest_verifies_and_is_well_formed(digest: str) -> None:
    signature = sign_digest(KEY, digest)
    assert signature_problem(signature, digest) is None
    assert trusting(KEY).check(sha256=digest, name="m", signatures=[signature]) == KEY.key_id


@given(digest=digests, other=digests, position=st.integers(0, 63), flip=st.integers(1, 255))
def test_any_change_to_signature_or_digest_is_refused(
    digest: str, other: str, position: int, flip: int
) -> None:
    signature = sign_digest(KEY, digest)
    damaged = bytearray(signature.signature)
    damaged[position] ^= flip
    bad = Signature(key_id=signature.key_id, public_key=signature.public_key, signature=bytes(damaged))
    assert signature_problem(bad, digest) is not None
    with pytest.raises(ModuleSignatureError):
        trusting(KEY).check(sha256=digest, name="m", signatures=[bad])
    if other != digest:
        assert signature_problem(signature, other) is not None
        with pytest.raises(ModuleSignatureError):
            trusting(KEY).check(sha256=other, name="m", signatures=[signature])


def test_signature_problems_name_what_is_malformed() -> None:
    good = sign_digest(KEY, DIGEST)
    assert "public_key must be 32 bytes" in (
        signature_problem(Signature(key_id=good.key_id, public_key=b"x", signature=good.signature), DIGEST)
        or ""
    )
    assert "signature must be 64 bytes" in (
        signature_problem(Signature(key_id=good.key_id, public_key=good.public_key, signature=b""), DIGEST)
        or ""
    )
    assert "is not the id of its public key" in (
        signature_problem(
            Signature(key_id=OTHER_KEY.key_id, public_key=good.public_key, signature=good.signature), DIGEST
        )
        or ""
    )
