"""Read and validate an app manifest (TOML): every problem names the file, the key and why.

Unknown keys are errors rather than ignored, so a typo ("timout") fails loudly instead of
silently running with the default. ``parse_manifest`` is pure; ``load_manifest`` adds the
file I/O: reading the manifest and checking that each module's source exists (and matches
its ``sha256`` when one is pinned).
"""

from __future__ import annotations

import hashlib
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast
from urllib.parse import urlsplit

from manifest.errors import ManifestError
from manifest.model import (
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MEMORY_BYTES,
    DEFAULT_TIMEOUT_S,
    Abi,
    AppManifest,
    ModuleSpec,
    Route,
)
from manifest.routes import RouteTable, route_prefix
from manifest.units import parse_duration, parse_size

MIN_MEMORY = 64 * 1024
MAX_MEMORY = 4 * 1024**3
MAX_TIMEOUT_S = 60.0

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_HOST_PATTERN = re.compile(r"(\*|[A-Za-z0-9*]([A-Za-z0-9.*-]*[A-Za-z0-9])?)(:(\*|\d{1,5}))?")
# The host sets these for every request (CGI/1.1 plus WAGI's X_* extras), so a manifest may
# not grant them; tests check this list against wasm_host's.
RESERVED_ENV = frozenset(
    {
        "AUTH_TYPE",
        "CONTENT_LENGTH",
        "CONTENT_TYPE",
        "GATEWAY_INTERFACE",
        "PATH_INFO",
        "PATH_TRANSLATED",
        "QUERY_STRING",
        "REMOTE_ADDR",
        "REMOTE_HOST",
        "REMOTE_USER",
        "REQUEST_METHOD",
        "SCRIPT_NAME",
        "SERVER_NAME",
        "SERVER_PORT",
        "SERVER_PROTOCOL",
        "SERVER_SOFTWARE",
        "X_FULL_URL",
        "X_MATCHED_ROUTE",
        "X_RAW_PATH_INFO",
    }
)

T = TypeVar("T")


class _Reader:
    """Typed access to the parsed TOML that raises ``ManifestError`` with the dotted key."""

    def __init__(self, source: str) -> None:
        self.source = source

    def fail(self, key: str, reason: str) -> ManifestError:
        return ManifestError(self.source, key, reason)

    def table(self, value: object, key: str) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {type(value).__name__}")
        return cast("dict[str, Any]", value)

    def only(self, table: Mapping[str, Any], key: str, allowed: set[str]) -> None:
        for name in table:
            if name not in allowed:
                hint = ", ".join(sorted(allowed))
                raise self.fail(f"{key}.{name}" if key else name, f"unknown key (known keys: {hint})")

    def string(self, table: Mapping[str, Any], key: str, name: str, *, required: bool = True) -> str | None:
        value = table.get(name)
        if value is None:
            if required:
                raise self.fail(f"{key}.{name}", "is required")
            return None
        if not isinstance(value, str):
            raise self.fail(f"{key}.{name}", f"expected a string, got {type(value).__name__}")
        return value

    def convert(self, key: str, value: object, parse: Callable[[Any], T]) -> T:
        try:
            return parse(value)
        except ValueError as exc:
            raise self.fail(key, str(exc)) from exc


def _check_url(reader: _Reader, key: str, url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise reader.fail(key, f"{url!r} is not an http(s) URL with a host")
    return url


def _parse_app(reader: _Reader, doc: Mapping[str, Any]) -> tuple[str, str, str]:
    if "app" not in doc:
        raise reader.fail("app", "is required: [app] with name and version")
    app = reader.table(doc["app"], "app")
    reader.only(app, "app", {"name", "version", "description"})
    name = reader.string(app, "app", "name")
    version = reader.string(app, "app", "version")
    assert name is not None
    assert version is not None
    if not _NAME.fullmatch(name):
        raise reader.fail("app.name", f"{name!r} must be 1-64 letters, digits, '-' or '_'")
    if not version.strip():
        raise reader.fail("app.version", "must not be empty")
    return name, version, reader.string(app, "app", "description", required=False) or ""


def _parse_route(reader: _Reader, index: int, raw: object) -> Route:
    key = f"route[{index}]"
    table = reader.table(raw, key)
    reader.only(table, key, {"path", "module", "origin"})
    path = reader.string(table, key, "path")
    assert path is not None
    if not path.startswith("/"):
        raise reader.fail(f"{key}.path", f"{path!r} must start with '/'")
    if "..." in path and route_prefix(path) is None:
        raise reader.fail(f"{key}.path", f"{path!r}: '...' is only allowed as a final '/...'")
    if any(c in path for c in "?#") or any(c.isspace() for c in path):
        raise reader.fail(f"{key}.path", f"{path!r} must be a plain path (no query, fragment or spaces)")
    module = reader.string(table, key, "module", required=False)
    origin = reader.string(table, key, "origin", required=False)
    if (module is None) == (origin is None):
        raise reader.fail(key, "needs exactly one of 'module' or 'origin'")
    if origin is not None:
        _check_url(reader, f"{key}.origin", origin)
    return Route(path=path, module=module, origin=origin)


def _parse_env(reader: _Reader, key: str, raw: object) -> tuple[tuple[str, str], ...]:
    table = reader.table(raw, key)
    env = []
    for name, value in table.items():
        if not _ENV_NAME.fullmatch(name):
            raise reader.fail(f"{key}.{name}", "is not a valid environment variable name")
        if name in RESERVED_ENV or name.startswith("HTTP_"):
            raise reader.fail(f"{key}.{name}", "is set by the host for every request and cannot be granted")
        if not isinstance(value, str):
            raise reader.fail(f"{key}.{name}", f"expected a string, got {type(value).__name__}")
        if "\x00" in value:
            raise reader.fail(f"{key}.{name}", "must not contain NUL")
        env.append((name, value))
    return tuple(env)


def _parse_hosts(reader: _Reader, key: str, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise reader.fail(key, f"expected a list of strings, got {type(raw).__name__}")
    hosts = []
    for index, item in enumerate(raw):
        item_key = f"{key}[{index}]"
        if not isinstance(item, str):
            raise reader.fail(item_key, "expected a string such as 'https://api.example.com'")
        scheme, sep, rest = item.partition("://")
        if not sep or scheme not in ("http", "https", "*") or not _HOST_PATTERN.fullmatch(rest):
            raise reader.fail(item_key, f"{item!r} is not 'scheme://host[:port]' (scheme http, https or *)")
        hosts.append(item)
    return tuple(hosts)


def _parse_module(reader: _Reader, name: str, raw: object, base_dir: Path) -> ModuleSpec:
    key = f"module.{name}"
    if not _NAME.fullmatch(name):
        raise reader.fail(key, f"module name {name!r} must be 1-64 letters, digits, '-' or '_'")
    table = reader.table(raw, key)
    allowed = {"source", "abi", "memory", "timeout", "max_output", "env", "allowed_outbound_hosts", "sha256"}
    reader.only(table, key, allowed)
    source = reader.string(table, key, "source")
    assert source is not None
    if not source or Path(source).is_absolute():
        raise reader.fail(f"{key}.source", f"{source!r} must be a path relative to the manifest")
    abi = reader.string(table, key, "abi", required=False) or "wagi"
    if abi not in ("wagi", "reactor"):
        raise reader.fail(f"{key}.abi", f"{abi!r} is not an ABI; use 'wagi' or 'reactor'")
    memory = reader.convert(f"{key}.memory", table.get("memory", DEFAULT_MEMORY_BYTES), parse_size)
    if not MIN_MEMORY <= memory <= MAX_MEMORY:
        raise reader.fail(f"{key}.memory", f"{memory} bytes is outside 64KiB..4GiB")
    timeout = DEFAULT_TIMEOUT_S
    if "timeout" in table:
        timeout = reader.convert(f"{key}.timeout", table["timeout"], parse_duration)
    if not 0 < timeout <= MAX_TIMEOUT_S:
        raise reader.fail(f"{key}.timeout", f"{timeout:g}s is outside (0, {MAX_TIMEOUT_S:g}s]")
    max_output = reader.convert(
        f"{key}.max_output", table.get("max_output", DEFAULT_MAX_OUTPUT_BYTES), parse_size
    )
    if max_output < 1:
        raise reader.fail(f"{key}.max_output", "must be at least 1 byte")
    sha256 = reader.string(table, key, "sha256", required=False)
    if sha256 is not None and not _SHA256.fullmatch(sha256):
        raise reader.fail(f"{key}.sha256", "must be 64 lower-case hex digits")
    return ModuleSpec(
        name=name,
        source=(base_dir / source).resolve(),
        abi=cast("Abi", abi),
        memory_bytes=memory,
        timeout_s=timeout,
        max_output_bytes=max_output,
        env=_parse_env(reader, f"{key}.env", table.get("env", {})),
        allowed_outbound_hosts=_parse_hosts(
            reader, f"{key}.allowed_outbound_hosts", table.get("allowed_outbound_hosts", [])
        ),
        sha256=sha256,
    )


def parse_manifest(text: str, base_dir: Path, source_name: str = "<manifest>") -> AppManifest:
    """Parse manifest ``text``; module sources resolve against ``base_dir``; no file I/O."""
    reader = _Reader(source_name)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise reader.fail("", f"not valid TOML: {exc}") from exc
    reader.only(doc, "", {"app", "route", "module"})
    name, version, description = _parse_app(reader, doc)
    raw_modules = reader.table(doc.get("module", {}), "module")
    modules = {key: _parse_module(reader, key, raw, base_dir) for key, raw in raw_modules.items()}
    raw_routes = doc.get("route", [])
    if not isinstance(raw_routes, list) or not raw_routes:
        raise reader.fail("route", "needs at least one [[route]] table")
    routes = tuple(_parse_route(reader, index, raw) for index, raw in enumerate(raw_routes))
    seen: dict[str, int] = {}
    for index, route in enumerate(routes):
        if route.path in seen:
            raise reader.fail(f"route[{index}].path", f"{route.path!r} is already route[{seen[route.path]}]")
        seen[route.path] = index
        if route.module is not None and route.module not in modules:
            raise reader.fail(f"route[{index}].module", f"no [module.{route.module}] is defined")
    return AppManifest(
        name=name,
        version=version,
        description=description,
        routes=routes,
        modules=modules,
        source_path=source_name,
        table=RouteTable.build(routes),
    )


def load_manifest(path: Path) -> AppManifest:
    """Read, parse and check the manifest at ``path``, including that every source exists."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(str(path), "", f"cannot read the manifest: {exc}") from exc
    manifest = parse_manifest(text, path.parent, str(path))
    for spec in manifest.modules.values():
        read_module(manifest, spec)
    return manifest


def read_module(manifest: AppManifest, spec: ModuleSpec) -> bytes:
    """The bytes of ``spec.source``, checked against ``spec.sha256`` when it is pinned."""
    key = f"module.{spec.name}.source"
    try:
        wasm = spec.source.read_bytes()
    except OSError as exc:
        raise ManifestError(manifest.source_path, key, f"cannot read {spec.source}: {exc.strerror}") from exc
    if spec.sha256 is not None:
        actual = hashlib.sha256(wasm).hexdigest()
        if actual != spec.sha256:
            raise ManifestError(
                manifest.source_path, f"module.{spec.name}.sha256", f"{spec.source} hashes to {actual}"
            )
    return wasm
