"""The module registry: digest- and size-checked, compile-validated, content-addressed storage.

A module lives as long as an app version uses it or an operator keeps it: removing an app
version collects the modules it leaves unused (``collect``, inside the removal's own
transaction), ``DeleteModule`` removes one on request; both refuse a module an app version
still refers to. Against a concurrent upload of the same digest: the row goes first and the
blob after, and an upload stores its blob before its row, so a module is never listed
without its bytes; an upload that finishes after a collection simply stores the module
again; and a registration checks that its modules exist in the same event-loop step that
stores the version, so no version can name a collected module.

What ``DownloadModule`` serves (bytes and wire signatures) is kept for the few most recent
digests (``served``): a deploy to 10,000 nodes is 10,000 downloads of one module, and three
SQLite reads each (row, signatures twice) were a tenth of the control plane's work in it.
Every change to a module's row or signatures (add, delete, collect) drops its entry.
"""

from __future__ import annotations

import dataclasses
import hashlib
import sqlite3
import time
from collections.abc import Iterable, Sequence

from control_plane.blobs import BlobStore, is_sha256_hex
from control_plane.compile_check import ModuleValidator
from control_plane.db import Database
from control_plane.errors import InvalidRequestError, ModuleInUseError, ModuleRejectedError, NotFoundError
from control_plane.records import ModuleRecord
from protos.edgecdn.v1 import common_pb2
from runtime.signing import Signature, SignatureLike, signature_problem

MAX_MODULE_BYTES = 64 * 1024 * 1024
MAX_SIGNATURES = 16
# Digests whose download form is kept, and the largest module kept (the blob store's own
# cache bounds memory further: a kept module shares its bytes).
SERVED_ENTRIES = 8
SERVED_MAX_BYTES = 16 * 1024 * 1024


@dataclasses.dataclass(frozen=True, slots=True)
class ServedModule:
    """What a download of one module sends: its bytes and its signatures in wire form."""

    data: bytes
    signatures: tuple[common_pb2.ModuleSignature, ...]


def check_digest(sha256: str, *, field: str = "sha256") -> str:
    """``sha256`` if it is lower-case sha256 hex, else InvalidRequestError."""
    if not is_sha256_hex(sha256):
        raise InvalidRequestError(field=field, reason=f"{sha256!r} is not a lower-case sha256 hex digest")
    return sha256


def check_upload(*, expected_sha256: str, expected_size: int, data: bytes) -> None:
    """Raise ModuleRejectedError unless ``data`` has the announced size and digest."""
    if len(data) != expected_size:
        raise ModuleRejectedError(
            code="size_mismatch",
            reason=f"received {len(data)} bytes but the header announced {expected_size}",
            sha256=expected_sha256,
        )
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise ModuleRejectedError(
            code="digest_mismatch",
            reason=f"received bytes have sha256 {actual}, not the announced {expected_sha256}",
            sha256=expected_sha256,
        )


def check_signatures(sha256: str, signatures: Sequence[SignatureLike]) -> tuple[Signature, ...]:
    """``signatures`` as values if each verifies for ``sha256`` under the key it carries (a
    mistake shows at upload, not as NACKs from every node); InvalidRequestError otherwise."""
    if len(signatures) > MAX_SIGNATURES:
        raise InvalidRequestError(field="header.signatures", reason=f"at most {MAX_SIGNATURES} signatures")
    checked: dict[str, Signature] = {}
    for signature in signatures:
        problem = signature_problem(signature, sha256)
        if problem is not None:
            raise InvalidRequestError(field="header.signatures", reason=problem)
        checked[signature.key_id] = Signature(
            key_id=signature.key_id,
            public_key=bytes(signature.public_key),
            signature=bytes(signature.signature),
        )
    return tuple(checked.values())


def wire_signatures(signatures: Iterable[Signature]) -> list[common_pb2.ModuleSignature]:
    return [
        common_pb2.ModuleSignature(key_id=s.key_id, public_key=s.public_key, signature=s.signature)
        for s in signatures
    ]


class ModuleRegistry:
    """Accepts, lists, serves and deletes modules."""

    def __init__(self, db: Database, blobs: BlobStore, validator: ModuleValidator) -> None:
        self._db = db
        self._blobs = blobs
        self._validator = validator
        self._served: dict[str, ServedModule] = {}

    async def add(
        self, *, name: str, sha256: str, abi: int, data: bytes, signatures: Sequence[SignatureLike] = ()
    ) -> ModuleRecord:
        """Compile-check and store a module whose digest and size the caller verified, with its
        signatures; a module already stored only gains the signatures."""
        checked = check_signatures(sha256, signatures)
        known = self._db.get_module(sha256)
        if known is not None and self._blobs.has(sha256):
            if not checked:
                return known
            self._served.pop(sha256, None)  # its signatures change
            return self._db.put_module(dataclasses.replace(known, signatures=checked))
        imports = await self._validator.validate_async(data, sha256)
        self._blobs.put(sha256, data)
        record = ModuleRecord(
            sha256=sha256, name=name, size_bytes=len(data), abi=abi, created_at=time.time(), imports=imports,
            signatures=checked,
        )  # fmt: skip
        self._served.pop(sha256, None)
        return self._db.put_module(record)

    def signatures(self, sha256: str) -> tuple[Signature, ...]:
        """The signatures stored with module ``sha256`` (none for an unknown module)."""
        return self._db.module_signatures(sha256)

    def get(self, sha256: str) -> ModuleRecord:
        record = self._db.get_module(check_digest(sha256))
        if record is None:
            raise NotFoundError(kind="module", key=sha256)
        return record

    def has(self, sha256: str) -> bool:
        return is_sha256_hex(sha256) and self._db.get_module(sha256) is not None

    def list(self) -> list[ModuleRecord]:
        return self._db.list_modules()

    def used_by(self, sha256: str) -> tuple[str, ...]:
        return self._db.module_users(sha256)

    def read(self, sha256: str) -> bytes:
        self.get(sha256)
        try:
            return self._blobs.get(sha256)
        except FileNotFoundError as exc:
            raise NotFoundError(kind="module blob", key=sha256) from exc

    def served(self, sha256: str) -> ServedModule:
        """What a download of module ``sha256`` sends (NotFoundError for an unknown one), kept
        for the most recent digests."""
        found = self._served.get(sha256)
        if found is not None:
            return found
        data = self.read(sha256)
        served = ServedModule(data=data, signatures=tuple(wire_signatures(self.signatures(sha256))))
        if len(data) <= SERVED_MAX_BYTES:
            if len(self._served) >= SERVED_ENTRIES:
                del self._served[next(iter(self._served))]  # the oldest
            self._served[sha256] = served
        return served

    async def fit_problem(self, sha256: str, abi: str, *, calls_out: bool = False) -> str | None:
        """Why a node could not run module ``sha256`` under ``abi``, or None (see compile_check)."""
        return await self._validator.fit_problem_async(self.read(sha256), sha256, abi, calls_out=calls_out)

    def delete(self, sha256: str) -> None:
        """Remove a module no app version uses (ModuleInUseError otherwise): row, then blob."""
        self.get(sha256)
        users = self._db.module_users(sha256)
        if users:
            raise ModuleInUseError(sha256=sha256, used_by=users)
        self._served.pop(sha256, None)
        self._db.delete_module(sha256)
        self._blobs.delete(sha256)

    def collect(self, conn: sqlite3.Connection, candidates: Iterable[str]) -> tuple[str, ...]:
        """Within the caller's write transaction ``conn``: delete the rows of the ``candidates``
        no app version refers to any more (the rule ``delete`` applies); the digests deleted.
        The caller drops their blobs with ``drop_blobs`` after it commits, so a crash leaves at
        worst a blob without a row (harmless: an upload of that digest finds the complete
        file), never a row without a blob."""
        collected: tuple[str, ...] = ()
        for sha256 in sorted(set(candidates)):
            deleted = conn.execute(
                "DELETE FROM modules WHERE sha256 = ? AND NOT EXISTS "
                "(SELECT 1 FROM app_modules WHERE sha256 = ?)",
                (sha256, sha256),
            ).rowcount
            if deleted:
                self._served.pop(sha256, None)
                collected += (sha256,)
        return collected

    def drop_blobs(self, digests: Iterable[str]) -> None:
        """Remove the blobs of modules ``collect`` deleted, unless an upload stored one again
        since (its row is back)."""
        for sha256 in digests:
            if self._db.get_module(sha256) is None:
                self._blobs.delete(sha256)
