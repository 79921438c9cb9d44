"""App manifests: parse and validate Spin-like app manifests (TOML) shared by nodes and the control plane.

``load_manifest(path)`` (or the pure ``parse_manifest(text, base_dir, source_name)``) gives an
``AppManifest``: its routes, its modules with their limits and grants, and ``match(path)``.
Every problem is a ``ManifestError`` naming the file, the key and the reason. The rules the
values must follow are ``check_manifest`` (manifest.rules), which the control plane applies to
every registered app version too. The format is documented in docs/manifest.md.
"""

from manifest.errors import ManifestError
from manifest.model import AppManifest, ModuleSpec, Route
from manifest.parse import load_manifest, parse_manifest, read_module
from manifest.routes import RouteTable
from manifest.rules import DEFAULT_POLICY, OriginPolicy, check_manifest
from manifest.units import format_size, parse_duration, parse_size

__all__ = [
    "DEFAULT_POLICY",
    "AppManifest",
    "ManifestError",
    "ModuleSpec",
    "OriginPolicy",
    "Route",
    "RouteTable",
    "check_manifest",
    "format_size",
    "load_manifest",
    "parse_duration",
    "parse_manifest",
    "parse_size",
    "read_module",
]
