"""The app registry: immutable, content-digested app versions that refer to modules by digest."""

from __future__ import annotations

import hashlib
import re
import time
from urllib.parse import urlsplit

from google.protobuf.timestamp_pb2 import Timestamp

from control_plane.db import Database
from control_plane.errors import AppConflictError, InvalidRequestError, NotFoundError
from control_plane.modules import ModuleRegistry
from protos.edgecdn.v1 import apps_pb2

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


def app_digest(app: apps_pb2.AppVersion) -> str:
    """sha256 of the version's content (routes and modules), independent of server-set fields."""
    content = apps_pb2.AppVersion()
    content.CopyFrom(app)
    content.ClearField("created_at")
    content.ClearField("digest")
    return hashlib.sha256(content.SerializeToString(deterministic=True)).hexdigest()


def app_problem(app: apps_pb2.AppVersion) -> tuple[str, str] | None:  # noqa: PLR0911 - one check per return
    """(field, reason) of the first thing wrong with ``app``, or None. Pure."""
    if not NAME.fullmatch(app.name):
        return "app.name", f"{app.name!r} is not a valid name (letters, digits, '.', '_', '-')"
    if not NAME.fullmatch(app.version):
        return "app.version", f"{app.version!r} is not a valid version"
    if not app.routes:
        return "app.routes", "an app needs at least one route"
    names = [module.name for module in app.modules]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        return "app.modules", f"module names repeated: {', '.join(duplicates)}"
    for route in app.routes:
        if not route.path.startswith("/"):
            return "app.routes", f"route path {route.path!r} must start with '/'"
        target = route.WhichOneof("target")
        if target is None:
            return "app.routes", f"route {route.path} has neither a module nor an origin"
        if target == "module" and route.module not in names:
            return "app.routes", f"route {route.path} refers to unknown module {route.module!r}"
        if target == "origin" and urlsplit(route.origin).scheme not in {"http", "https"}:
            return "app.routes", f"route {route.path}: origin {route.origin!r} is not an http(s) URL"
    return None


def parse_app_ref(ref: str) -> tuple[str, str | None]:
    """``NAME[@VERSION]`` -> (name, version or None)."""
    name, sep, version = ref.partition("@")
    return name, (version if sep and version else None)


class AppRegistry:
    """Registers and reads app versions."""

    def __init__(self, db: Database, modules: ModuleRegistry) -> None:
        self._db = db
        self._modules = modules

    def register(self, app: apps_pb2.AppVersion) -> apps_pb2.AppVersion:
        problem = app_problem(app)
        if problem is not None:
            raise InvalidRequestError(field=problem[0], reason=problem[1])
        for module in app.modules:
            if not self._modules.has(module.sha256):
                raise InvalidRequestError(
                    field=f"app.modules[{module.name}]",
                    reason=f"module {module.sha256!r} is not in the registry (push it first)",
                )
        digest = app_digest(app)
        existing = self._db.get_app(app.name, app.version)
        if existing is not None:
            if existing[0] != digest:
                raise AppConflictError(name=app.name, version=app.version)
            return _decode(existing[1])
        stored = apps_pb2.AppVersion()
        stored.CopyFrom(app)
        stored.digest = digest
        stored.created_at.CopyFrom(_timestamp(time.time()))
        self._db.put_app(
            name=app.name,
            version=app.version,
            digest=digest,
            created_at=stored.created_at.ToNanoseconds() / 1e9,
            body=stored.SerializeToString(deterministic=True),
            sha256s=tuple(m.sha256 for m in app.modules),
        )
        return stored

    def get(self, name: str, version: str | None = None) -> apps_pb2.AppVersion:
        found = self._db.get_app(name, version)
        if found is None:
            raise NotFoundError(kind="app", key=name if version is None else f"{name}@{version}")
        return _decode(found[1])

    def list(self) -> list[apps_pb2.AppSummary]:
        return [
            apps_pb2.AppSummary(name=name, versions=versions, latest=versions[-1])
            for name, versions in self._db.list_apps()
        ]


def _timestamp(seconds: float) -> Timestamp:
    stamp = Timestamp()
    stamp.FromNanoseconds(int(seconds * 1e9))
    return stamp


def _decode(body: bytes) -> apps_pb2.AppVersion:
    app = apps_pb2.AppVersion()
    app.ParseFromString(body)
    return app
