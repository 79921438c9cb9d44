"""The app registry: content-digested app versions that refer to modules by digest.

A version is checked before it is stored with exactly the rules ``edgectl`` applies to a
manifest (``manifest.check_manifest`` on the version's manifest value), then each module it
names must be in the registry and link under the ABI the version gives it, as a node would
link it. A version never changes once stored; it can be removed (``remove``) once nothing
runs it, would get it or may roll back to it (``app_usage``), and the modules it leaves
unused go with it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

from google.protobuf.timestamp_pb2 import Timestamp

from control_plane.db import Database
from control_plane.errors import AppConflictError, ControlPlaneError, InvalidRequestError, NotFoundError
from control_plane.modules import ModuleRegistry, wire_signatures
from cpclient.apps import ABI_NAMES, app_manifest
from manifest import DEFAULT_POLICY, ManifestError, OriginPolicy, check_manifest
from protos.edgecdn.v1 import apps_pb2

# What keeps ``name@version`` in use, one phrase each (control_plane.app_usage.AppUsage).
UsageCheck = Callable[[str, str], list[str]]


class AppInUseError(ControlPlaneError):
    """An app version cannot be removed while it is deployed or part of a rollout."""

    def __init__(self, *, name: str, version: str, users: list[str]) -> None:
        super().__init__(
            f"app {name}@{version} is in use: {'; '.join(users)}. Deploy another version "
            "there (or wait for the rollout to end), then remove it"
        )
        self.users = users


def app_digest(app: apps_pb2.AppVersion) -> str:
    """sha256 of the version's content (routes and modules), independent of server-set fields."""
    content = apps_pb2.AppVersion()
    content.CopyFrom(app)
    content.ClearField("created_at")
    content.ClearField("digest")
    for module in content.modules:
        module.ClearField("signatures")  # they belong to the module, not to the version
    return hashlib.sha256(content.SerializeToString(deterministic=True)).hexdigest()


def app_problem(app: apps_pb2.AppVersion, origins: OriginPolicy = DEFAULT_POLICY) -> tuple[str, str] | None:
    """(key, reason) of the first rule ``app`` breaks, or None. Pure; the rules are edgectl's
    (``manifest.rules``), keys are the manifest's (``module.api.memory``, ``route[2].path``)."""
    try:
        check_manifest(app_manifest(app, "app"), origins)
    except ManifestError as exc:
        return exc.key or "app", exc.reason
    return None


def parse_app_ref(ref: str) -> tuple[str, str | None]:
    """``NAME[@VERSION]`` -> (name, version or None)."""
    name, sep, version = ref.partition("@")
    return name, (version if sep and version else None)


class AppRegistry:
    """Registers, reads and removes app versions."""

    def __init__(
        self, db: Database, modules: ModuleRegistry, *, origins: OriginPolicy = DEFAULT_POLICY
    ) -> None:
        self._db = db
        self._modules = modules
        self._origins = origins

    @property
    def db(self) -> Database:
        return self._db

    async def register(self, app: apps_pb2.AppVersion) -> apps_pb2.AppVersion:
        """Store ``app`` (InvalidRequestError naming what is wrong; nothing is stored then)."""
        problem = app_problem(app, self._origins)
        if problem is not None:
            raise InvalidRequestError(field=problem[0], reason=problem[1])
        for module in app.modules:
            if not self._modules.has(module.sha256):
                raise InvalidRequestError(
                    field=f"module.{module.name}.sha256",
                    reason=f"module {module.sha256!r} is not in the registry (push it first)",
                )
        digest = app_digest(app)
        existing = self._db.get_app(app.name, app.version)
        if existing is not None:
            if existing[0] != digest:
                raise AppConflictError(name=app.name, version=app.version)
            return _decode(existing[1])
        for module in app.modules:
            try:
                unfit = await self._modules.fit_problem(
                    module.sha256, ABI_NAMES[module.abi], calls_out=bool(module.allowed_outbound_hosts)
                )
            except NotFoundError:  # removed while this call was linking another module
                unfit = "is no longer in the registry (push it again)"
            if unfit is not None:
                raise InvalidRequestError(field=f"module.{module.name}.abi", reason=unfit)
        return self._store(app, digest)

    def _store(self, app: apps_pb2.AppVersion, digest: str) -> apps_pb2.AppVersion:
        existing = self._db.get_app(app.name, app.version)  # registered during the awaits above
        if existing is not None:
            if existing[0] != digest:
                raise AppConflictError(name=app.name, version=app.version)
            return self._signed(_decode(existing[1]))
        missing = [m.sha256 for m in app.modules if not self._modules.has(m.sha256)]
        if missing:
            raise InvalidRequestError(
                field="app.modules", reason=f"module {missing[0]!r} is not in the registry (push it first)"
            )
        stored = apps_pb2.AppVersion()
        stored.CopyFrom(app)
        stored.digest = digest
        stored.created_at.CopyFrom(_timestamp(time.time()))
        for module in stored.modules:
            module.ClearField("signatures")
        self._db.put_app(
            name=app.name,
            version=app.version,
            digest=digest,
            created_at=stored.created_at.ToNanoseconds() / 1e9,
            body=stored.SerializeToString(deterministic=True),
            sha256s=tuple(m.sha256 for m in app.modules),
        )
        return self._signed(stored)

    def get(self, name: str, version: str | None = None) -> apps_pb2.AppVersion:
        found = self._db.get_app(name, version)
        if found is None:
            raise NotFoundError(kind="app", key=name if version is None else f"{name}@{version}")
        return self._signed(_decode(found[1]))

    def _signed(self, app: apps_pb2.AppVersion) -> apps_pb2.AppVersion:
        """``app`` with each module's stored signatures, as nodes need them to verify it."""
        for module in app.modules:
            module.ClearField("signatures")
            module.signatures.extend(wire_signatures(self._modules.signatures(module.sha256)))
        return app

    def list(self) -> list[apps_pb2.AppSummary]:
        return [
            apps_pb2.AppSummary(name=name, versions=versions, latest=versions[-1])
            for name, versions in self._db.list_apps()
        ]

    def remove(self, name: str, version: str, *, users: UsageCheck) -> tuple[str, ...]:
        """Remove ``name@version`` and collect the modules no version uses any more (their
        digests are returned). NotFoundError for an unknown version, AppInUseError while
        ``users`` names anything that keeps it in use. One transaction: the version, its
        module references and the collected modules' rows go together; blobs after."""
        if not version:
            raise InvalidRequestError(field="version", reason="name the version to remove (NAME@VERSION)")
        app = self.get(name, version)
        in_use = users(name, version)
        if in_use:
            raise AppInUseError(name=name, version=version, users=in_use)
        with self._db.transaction() as conn:
            conn.execute("DELETE FROM apps WHERE name = ? AND version = ?", (name, version))
            conn.execute("DELETE FROM app_modules WHERE name = ? AND version = ?", (name, version))
            collected = self._modules.collect(conn, (m.sha256 for m in app.modules))
        self._modules.drop_blobs(collected)
        return collected


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _decode(body: bytes) -> apps_pb2.AppVersion:
    app = apps_pb2.AppVersion()
    app.ParseFromString(body)
    return app
