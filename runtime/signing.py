"""Ed25519 module signatures: what is signed, how keys are stored, and when a module is trusted.

One rule, used by every party: ``edgectl`` signs a module's digest (``sign_digest``); the
control plane refuses a signature that does not verify under the public key it carries
(``signature_problem``), so a mistake shows at upload; edge nodes and IoT gateways accept a
module only when a key they trust signed its digest (``TrustedKeys.check``), before they
compile it. The nodes trust their own copies of the public keys, never the one a signature
carries: the control plane stores signatures but is not trusted to vouch for them.

What is signed is the module's lower-case sha256 hex behind a context string, so a
signature of a module can never be passed off as a signature of anything else. Key files
are PEM, as ``openssl genpkey -algorithm ed25519`` writes them: PKCS#8 private keys and
SubjectPublicKeyInfo public keys. A key id is the first 16 hex characters of the sha256 of
the raw 32-byte public key.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

CONTEXT = b"edgecdn module sha256 v1\n"
KEY_ID_CHARS = 16
PUBLIC_KEY_BYTES = 32
SIGNATURE_BYTES = 64
MAX_KEY_FILE_BYTES = 64 * 1024
# The local world's signing key, in its state directory (``edgecdn up`` makes it; edgectl,
# when it finds the world through its state directory, signs with it).
WORLD_SIGNING_KEY_FILE = "signing-key.pem"
Refusal = Literal["unsigned", "bad_signature", "untrusted_signer"]


class SigningError(Exception):
    """Base class for signing errors."""


class KeyFileError(SigningError):
    """A key file cannot be read, written or understood."""

    def __init__(self, *, path: str, reason: str) -> None:
        super().__init__(f"key file {path}: {reason}")
        self.path = path
        self.reason = reason


class ModuleSignatureError(SigningError):
    """A module is not signed by a trusted key; ``refusal`` says how, the message names the
    module and the key ids involved."""

    def __init__(self, *, sha256: str, name: str, refusal: Refusal, reason: str) -> None:
        super().__init__(f"module {name or '?'} ({sha256[:12]}) refused: {reason}")
        self.sha256 = sha256
        self.name = name
        self.refusal = refusal
        self.reason = reason

    @property
    def code(self) -> str:
        """The code a NACK carries: module_unsigned, module_bad_signature, module_untrusted_signer."""
        return f"module_{self.refusal}"


class SignatureLike(Protocol):
    """A signature as the wire carries it (``edgecdn.v1.ModuleSignature`` fits)."""

    @property
    def key_id(self) -> str: ...

    @property
    def public_key(self) -> bytes: ...

    @property
    def signature(self) -> bytes: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class Signature:
    """An Ed25519 signature of one module digest, with the key that made it."""

    key_id: str
    public_key: bytes
    signature: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class SigningKey:
    """A private key loaded from a file, with its key id."""

    key_id: str
    private_key: Ed25519PrivateKey = field(repr=False)


def key_id(public_key: bytes) -> str:
    """The key id of a raw 32-byte Ed25519 public key."""
    return hashlib.sha256(public_key).hexdigest()[:KEY_ID_CHARS]


def signed_message(sha256: str) -> bytes:
    """The bytes a signature of module ``sha256`` covers."""
    return CONTEXT + sha256.encode("ascii")


def _raw_public(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def sign_digest(key: SigningKey, sha256: str) -> Signature:
    """Sign module ``sha256`` (lower-case hex) with ``key``."""
    public = _raw_public(key.private_key.public_key())
    signature = key.private_key.sign(signed_message(sha256))
    return Signature(key_id=key.key_id, public_key=public, signature=signature)


def _verifies(public_key: bytes, signature: bytes, sha256: str) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, signed_message(sha256))
    except (InvalidSignature, ValueError):
        return False
    return True


def signature_problem(signature: SignatureLike, sha256: str) -> str | None:
    """Why ``signature`` is not a valid signature of module ``sha256`` by the key it carries, or None."""
    if len(signature.public_key) != PUBLIC_KEY_BYTES:
        return f"public_key must be {PUBLIC_KEY_BYTES} bytes, not {len(signature.public_key)}"
    if len(signature.signature) != SIGNATURE_BYTES:
        return f"signature must be {SIGNATURE_BYTES} bytes, not {len(signature.signature)}"
    if signature.key_id != key_id(signature.public_key):
        return f"key id {signature.key_id!r} is not the id of its public key ({key_id(signature.public_key)})"
    if not _verifies(signature.public_key, signature.signature, sha256):
        return f"the signature by key {signature.key_id} does not verify for module {sha256}"
    return None


@dataclass(frozen=True, slots=True, kw_only=True)
class TrustedKeys:
    """The public keys a node or gateway trusts, as (key id, raw public key); none means signatures
    are not required. A tuple, not a dict, so that the configs holding it stay hashable."""

    keys: tuple[tuple[str, bytes], ...] = ()

    @classmethod
    def of(cls, keys: Mapping[str, bytes]) -> TrustedKeys:
        return cls(keys=tuple(sorted(keys.items())))

    @property
    def required(self) -> bool:
        return bool(self.keys)

    def check(self, *, sha256: str, name: str, signatures: Sequence[SignatureLike]) -> str | None:
        """The id of a trusted key whose signature of ``sha256`` verifies (None when no key is
        required); ModuleSignatureError naming the module and the key ids otherwise."""
        if not self.keys:
            return None
        by_id = dict(self.keys)
        failed: list[str] = []
        for signature in signatures:
            public = by_id.get(signature.key_id)
            if public is None:
                continue
            if _verifies(public, signature.signature, sha256):
                return signature.key_id
            failed.append(signature.key_id)
        trusted = ", ".join(key for key, _ in self.keys)
        refusal: Refusal
        if not signatures:
            refusal, reason = "unsigned", f"it is unsigned (trusted keys: {trusted})"
        elif failed:
            refusal = "bad_signature"
            reason = (
                f"the signature by key {', '.join(failed)} does not verify (tampered module or signature)"
            )
        else:
            signers = ", ".join(sorted({s.key_id or "?" for s in signatures}))
            refusal = "untrusted_signer"
            reason = f"signed by key {signers}, which is not trusted (trusted keys: {trusted})"
        raise ModuleSignatureError(sha256=sha256, name=name, refusal=refusal, reason=reason)


# -- key files ---------------------------------------------------------------------------


def _read_pem(path: Path) -> bytes:
    try:
        with path.open("rb") as source:
            data = source.read(MAX_KEY_FILE_BYTES + 1)
    except OSError as exc:
        raise KeyFileError(path=str(path), reason=exc.strerror or str(exc)) from exc
    if len(data) > MAX_KEY_FILE_BYTES:
        raise KeyFileError(path=str(path), reason="too large for a key file")
    if b"-----BEGIN" not in data:
        raise KeyFileError(path=str(path), reason="not a PEM file (expected -----BEGIN ... KEY-----)")
    return data


def load_signing_key(path: Path) -> SigningKey:
    """The Ed25519 private key in PEM file ``path``; KeyFileError saying what is wrong otherwise."""
    data = _read_pem(path)
    if b"PUBLIC KEY" in data:
        raise KeyFileError(path=str(path), reason="holds a public key; signing needs the private key")
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError as exc:
        raise KeyFileError(
            path=str(path), reason="the private key is encrypted; give an unencrypted one"
        ) from (exc)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(path=str(path), reason=f"not a readable private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(path=str(path), reason=f"an {type(key).__name__}, not an Ed25519 private key")
    return SigningKey(key_id=key_id(_raw_public(key.public_key())), private_key=key)


def load_public_key(path: Path) -> tuple[str, bytes]:
    """(key id, raw public key) of the Ed25519 public key in PEM file ``path``. A private key
    file is refused: trusted keys are meant to be spread, private keys not."""
    data = _read_pem(path)
    if b"PRIVATE KEY" in data:
        raise KeyFileError(path=str(path), reason="holds a private key; give its public key (the .pub file)")
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyFileError(path=str(path), reason=f"not a readable public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise KeyFileError(path=str(path), reason=f"an {type(key).__name__}, not an Ed25519 public key")
    raw = _raw_public(key)
    return key_id(raw), raw


def load_trusted_keys(paths: Iterable[Path]) -> TrustedKeys:
    """The public keys in ``paths`` (``--trusted-key``), by key id."""
    return TrustedKeys.of(dict(load_public_key(path) for path in paths))


def public_key_path(private_path: Path) -> Path:
    """Where ``generate_key_pair`` puts the public key of ``private_path``: beside it, ``.pub``."""
    return private_path.with_name(private_path.name + ".pub")


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The PEM public key file (SubjectPublicKeyInfo) of ``key``."""
    return key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def generate_key_pair(private_path: Path) -> str:
    """Write a new private key to ``private_path`` (mode 0600) and its public key beside it;
    the key id. Refuses to overwrite either file."""
    public_path = public_key_path(private_path)
    for path in (private_path, public_path):
        if path.exists():
            raise KeyFileError(path=str(path), reason="already exists; choose another path, or remove it")
    key = Ed25519PrivateKey.generate()
    private_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public_pem = public_key_pem(key)
    try:
        private_path.parent.mkdir(parents=True, exist_ok=True)
        # O_EXCL: never follow or reuse a file someone slipped in; 0600 before any byte is written.
        fd = os.open(private_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(private_pem)
        public_path.write_bytes(public_pem)
    except OSError as exc:
        raise KeyFileError(path=str(private_path), reason=exc.strerror or str(exc)) from exc
    return key_id(_raw_public(key.public_key()))
