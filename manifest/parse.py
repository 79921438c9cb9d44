"""Read and validate an app manifest (TOML): every problem names the file, the key and why.

Unknown keys are errors rather than ignored, so a typo ("timout") fails loudly instead of
silently running with the default. This module reads types and units; what the values may
be is ``manifest.rules``, the one set of rules the control plane applies too.
``parse_manifest`` is pure; ``load_manifest`` adds the file I/O: reading the manifest and
checking that each module's source exists (and matches its ``sha256`` when one is pinned).
"""

from __future__ import annotations

import hashlib
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar, cast

from manifest.errors import ManifestError
from manifest.model import (
    COMPONENT_ABI,
    DEFAULT_MAX_OUTPUT_BYTES,
    DEFAULT_MEMORY_BYTES,
    DEFAULT_OUTBOUND_BYTES,
    DEFAULT_OUTBOUND_REQUESTS,
    DEFAULT_OUTBOUND_TIMEOUT_S,
    DEFAULT_TIMEOUT_S,
    Abi,
    AppManifest,
    ModuleSpec,
    Route,
)
from manifest.routes import RouteTable
from manifest.rules import DEFAULT_POLICY, OriginPolicy, check_manifest
from manifest.units import parse_duration, parse_size

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


def _parse_app(reader: _Reader, doc: Mapping[str, Any]) -> tuple[str, str, str]:
    if "app" not in doc:
        raise reader.fail("app", "is required: [app] with name and version")
    app = reader.table(doc["app"], "app")
    reader.only(app, "app", {"name", "version", "description"})
    name = reader.string(app, "app", "name")
    version = reader.string(app, "app", "version")
    assert name is not None
    assert version is not None
    return name, version, reader.string(app, "app", "description", required=False) or ""


def _parse_route(reader: _Reader, index: int, raw: object) -> Route:
    key = f"route[{index}]"
    table = reader.table(raw, key)
    reader.only(table, key, {"path", "module", "component", "origin"})
    path = reader.string(table, key, "path")
    assert path is not None
    if "module" in table and "component" in table:
        raise reader.fail(f"{key}.component", "is another name for 'module': give one of them")
    module = reader.string(table, key, "module", required=False)
    if module is None:  # Spin's word for it
        module = reader.string(table, key, "component", required=False)
    origin = reader.string(table, key, "origin", required=False)
    return Route(path=path, module=module, origin=origin)


def _parse_env(reader: _Reader, key: str, raw: object) -> tuple[tuple[str, str], ...]:
    table = reader.table(raw, key)
    env = []
    for name, value in table.items():
        if not isinstance(value, str):
            raise reader.fail(f"{key}.{name}", f"expected a string, got {type(value).__name__}")
        env.append((name, value))
    return tuple(env)


def _parse_hosts(reader: _Reader, key: str, raw: object) -> tuple[str, ...]:
    if not isinstance(raw, list):
        raise reader.fail(key, f"expected a list of strings, got {type(raw).__name__}")
    hosts = []
    for index, item in enumerate(raw):
        if not isinstance(item, str):
            raise reader.fail(f"{key}[{index}]", "expected a string such as 'https://api.example.com'")
        hosts.append(item)
    return tuple(hosts)


def _parse_module(
    reader: _Reader, name: str, raw: object, base_dir: Path, *, table_name: str = "module"
) -> ModuleSpec:
    """``[module.NAME]``, or ``[component.NAME]`` (``table_name``), whose ABI defaults to
    ``wasi-http``: what Spin's manifests call components are HTTP components."""
    key = f"{table_name}.{name}"
    table = reader.table(raw, key)
    allowed = {
        "source",
        "abi",
        "memory",
        "timeout",
        "max_output",
        "env",
        "allowed_outbound_hosts",
        "outbound_requests",
        "outbound_bytes",
        "outbound_timeout",
        "sha256",
    }
    reader.only(table, key, allowed)
    source = reader.string(table, key, "source")
    assert source is not None
    if not source or Path(source).is_absolute():
        raise reader.fail(f"{key}.source", f"{source!r} must be a path relative to the manifest")
    if "\x00" in source:
        raise reader.fail(f"{key}.source", "must not contain NUL")
    default_abi = COMPONENT_ABI if table_name == "component" else "wagi"
    abi = reader.string(table, key, "abi", required=False) or default_abi
    memory = reader.convert(f"{key}.memory", table.get("memory", DEFAULT_MEMORY_BYTES), parse_size)
    timeout = DEFAULT_TIMEOUT_S
    if "timeout" in table:
        timeout = reader.convert(f"{key}.timeout", table["timeout"], parse_duration)
    max_output = reader.convert(
        f"{key}.max_output", table.get("max_output", DEFAULT_MAX_OUTPUT_BYTES), parse_size
    )
    outbound_timeout = DEFAULT_OUTBOUND_TIMEOUT_S
    if "outbound_timeout" in table:
        outbound_timeout = reader.convert(
            f"{key}.outbound_timeout", table["outbound_timeout"], parse_duration
        )
    outbound_requests = table.get("outbound_requests", DEFAULT_OUTBOUND_REQUESTS)
    if not isinstance(outbound_requests, int) or isinstance(outbound_requests, bool):
        raise reader.fail(
            f"{key}.outbound_requests", f"expected an integer, got {type(outbound_requests).__name__}"
        )
    return ModuleSpec(
        name=name,
        source=(base_dir / source).resolve(),
        abi=cast("Abi", abi),  # check_manifest refuses any other value
        memory_bytes=memory,
        timeout_s=timeout,
        max_output_bytes=max_output,
        env=_parse_env(reader, f"{key}.env", table.get("env", {})),
        allowed_outbound_hosts=_parse_hosts(
            reader, f"{key}.allowed_outbound_hosts", table.get("allowed_outbound_hosts", [])
        ),
        outbound_requests=outbound_requests,
        outbound_bytes=reader.convert(
            f"{key}.outbound_bytes", table.get("outbound_bytes", DEFAULT_OUTBOUND_BYTES), parse_size
        ),
        outbound_timeout_s=outbound_timeout,
        sha256=reader.string(table, key, "sha256", required=False),
    )


def parse_manifest(
    text: str, base_dir: Path, source_name: str = "<manifest>", *, origins: OriginPolicy = DEFAULT_POLICY
) -> AppManifest:
    """Parse manifest ``text``; module sources resolve against ``base_dir``; no file I/O.

    The values are then held to ``manifest.rules`` (the control plane's rules too);
    ``origins`` allows origin hosts those rules refuse by default (link-local, metadata).
    """
    reader = _Reader(source_name)
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise reader.fail("", f"not valid TOML: {exc}") from exc
    reader.only(doc, "", {"app", "route", "module", "component"})
    name, version, description = _parse_app(reader, doc)
    raw_modules = reader.table(doc.get("module", {}), "module")
    modules = {key: _parse_module(reader, key, raw, base_dir) for key, raw in raw_modules.items()}
    for key, raw in reader.table(doc.get("component", {}), "component").items():
        if key in modules:
            raise reader.fail(f"component.{key}", f"{key!r} is also a [module.{key}]: one name, one table")
        modules[key] = _parse_module(reader, key, raw, base_dir, table_name="component")
    raw_routes = doc.get("route", [])
    if not isinstance(raw_routes, list):
        raise reader.fail("route", "needs at least one [[route]] table")
    routes = tuple(_parse_route(reader, index, raw) for index, raw in enumerate(raw_routes))
    manifest = AppManifest(
        name=name,
        version=version,
        description=description,
        routes=routes,
        modules=modules,
        source_path=source_name,
        table=RouteTable.build(routes),
    )
    check_manifest(manifest, origins)
    return manifest


def load_manifest(path: Path, *, origins: OriginPolicy = DEFAULT_POLICY) -> AppManifest:
    """Read, parse and check the manifest at ``path``, including that every source exists."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(str(path), "", f"cannot read the manifest: {exc}") from exc
    manifest = parse_manifest(text, path.parent, str(path), origins=origins)
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
