"""The rules an app must follow, in one place: ``edgectl`` (through the manifest parser) and the
control plane (on every ``RegisterApp``) both call ``check_manifest``, so neither can accept
what the other refuses.

The parser turns TOML into an ``AppManifest`` (types, units, unknown keys) and the control
plane turns a wire ``AppVersion`` into one; everything about what the values may be lives
here: names, bounds on limits and sizes, reserved environment names, ABIs, route paths,
duplicate routes, missing and unused modules, and origins on link-local or cloud metadata
addresses (refused unless the operator allows them, see ``OriginPolicy``). Pure: no I/O,
no name resolution.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from manifest.errors import ManifestError
from manifest.model import AppManifest, ModuleSpec, Route
from manifest.routes import route_prefix

KiB = 1024
MiB = 1024 * KiB

# Bounds (docs/manifest.md "Limits"). MAX_MEMORY is the edge nodes' default wasm engine pool
# slot (wasm_host EngineConfig.pool_max_memory_bytes; a test keeps them equal), so every
# memory cap an app may ask for is one every node can grant.
MIN_MEMORY = 64 * KiB
MAX_MEMORY = 256 * MiB
MAX_TIMEOUT_S = 60.0
MAX_OUTPUT_BYTES = 64 * MiB
MAX_ROUTES = 256
MAX_MODULES = 64
MAX_PATH_CHARS = 1024
MAX_URL_CHARS = 2048
MAX_ENV_VARS = 128
MAX_ENV_BYTES = 64 * KiB  # names and values of one module together
MAX_OUTBOUND_HOSTS = 64
MAX_OUTBOUND_REQUESTS = 100  # per handler invocation
MAX_OUTBOUND_BYTES = 64 * MiB  # per handler invocation, bodies both ways
MAX_OUTBOUND_TIMEOUT_S = 60.0
ABIS = ("wagi", "reactor", "wasi-http")

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
MODULE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
VERSION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,127}")
ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
SHA256 = re.compile(r"[0-9a-f]{64}")
# Spin's grammar: a host is a name or address, '*', or '*.' before a name ('self': the app's
# own origin routes); the port a number or '*'. wasm_host.outbound_policy parses the same
# (a test keeps the two in step).
HOST_PATTERN = re.compile(
    r"(\*|(\*\.)?[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])(:(?P<port>\*|\d{1,5}))?"
)
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")

# The host sets these for every request (CGI/1.1 plus WAGI's X_* extras), so an app may not
# grant them, nor any HTTP_* (the request headers); tests check this list against wasm_host's.
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

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

# Where a cloud machine's credentials live: an origin there would let an app author read the
# edge node's instance metadata through the CDN. Link-local ranges hold every major cloud's
# metadata service (AWS, GCP, Azure, OCI, DigitalOcean: 169.254.169.254).
BLOCKED_NETWORKS: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)
BLOCKED_HOSTS = frozenset(
    {
        "metadata",
        "metadata.google.internal",
        "metadata.goog",
        "instance-data",
        "instance-data.ec2.internal",
    }
)


@dataclass(frozen=True, slots=True)
class OriginPolicy:
    """Which otherwise refused origin hosts the operator allows: networks and host names.

    The default allows none of them. Built from ``--allow-origin-network`` values, each a CIDR
    (``169.254.10.0/24``) or a host name (``metadata.google.internal``).
    """

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, values: Iterable[str]) -> OriginPolicy:
        """The policy for flag values; ValueError naming the value that is neither form."""
        networks: list[Network] = []
        hosts: set[str] = set()
        for value in values:
            text = value.strip()
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
                continue
            except ValueError:
                pass
            if not re.fullmatch(r"[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?\.?", text):
                raise ValueError(f"{value!r} is neither a CIDR (169.254.10.0/24) nor a host name")
            hosts.add(_normal_host(text))
        return cls(networks=tuple(networks), hosts=frozenset(hosts))

    def allows(self, host: str, address: Address | None) -> bool:
        if host in self.hosts:
            return True
        return address is not None and any(address in network for network in self.networks)


DEFAULT_POLICY = OriginPolicy()


def _normal_host(host: str) -> str:
    return host.lower().rstrip(".")


def host_address(host: str) -> Address | None:
    """The address a literal host names, including the forms a resolver also takes
    (``2852039166``, ``0xa9fea9fe``, ``169.254.43518``) and IPv4-mapped IPv6; None for a name."""
    try:
        address: Address = ipaddress.ip_address(host)
    except ValueError:
        if not _NUMERIC_HOST.fullmatch(host):
            return None
        try:
            address = ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def origin_problem(url: str, policy: OriginPolicy = DEFAULT_POLICY) -> str | None:  # noqa: PLR0911
    """Why ``url`` cannot be an origin, or None."""
    if len(url) > MAX_URL_CHARS:
        return f"is longer than {MAX_URL_CHARS} characters"
    if any(ord(c) < 0x21 or ord(c) == 0x7F for c in url):
        return f"{url!r} contains spaces or control characters"
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError as exc:
        return f"{url!r} is not a URL: {exc}"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"{url!r} is not an http(s) URL with a host"
    host = _normal_host(parts.hostname)
    address = host_address(host)
    if policy.allows(host, address):
        return None
    blocked = next((n for n in BLOCKED_NETWORKS if address is not None and address in n), None)
    if blocked is not None or host in BLOCKED_HOSTS:
        where = f"in {blocked}" if blocked is not None else "a cloud metadata host"
        return (
            f"{url!r} is on a link-local or metadata address ({where}); refused unless the operator "
            "allows it with --allow-origin-network"
        )
    return None


def path_problem(path: str) -> str | None:
    """Why ``path`` cannot be a route path, or None."""
    if not path.startswith("/"):
        return f"{path!r} must start with '/'"
    if len(path) > MAX_PATH_CHARS:
        return f"is longer than {MAX_PATH_CHARS} characters"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in path):
        return f"{path!r} contains a control character (NUL, newline, ...)"
    if "..." in path and route_prefix(path) is None:
        return f"{path!r}: '...' is only allowed as a final '/...'"
    if any(c in path for c in "?#") or any(c.isspace() for c in path):
        return f"{path!r} must be a plain path (no query, fragment or spaces)"
    return None


def env_problem(name: str, value: str) -> str | None:
    """Why ``name=value`` cannot be granted, or None."""
    if not ENV_NAME.fullmatch(name):
        return "is not a valid environment variable name"
    if name in RESERVED_ENV or name.startswith("HTTP_"):
        return "is set by the host for every request and cannot be granted"
    if "\x00" in value:
        return "must not contain NUL"
    return None


def host_grant_problem(item: str) -> str | None:
    """Why ``item`` is not an ``allowed_outbound_hosts`` entry, or None."""
    scheme, sep, rest = item.partition("://")
    match = HOST_PATTERN.fullmatch(rest) if sep else None
    if match is None or scheme not in ("http", "https", "*"):
        return (
            f"{item!r} is not 'scheme://host[:port]' (scheme http, https or *; host a name, "
            "'*', '*.domain' or 'self'; port a number or '*')"
        )
    port = match["port"]
    if port is not None and port != "*" and not 1 <= int(port) <= 65535:
        return f"{item!r}: port {port} is outside 1..65535"
    return None


def _check_module(fail: _Fail, spec: ModuleSpec) -> None:  # noqa: PLR0912 - one check per rule
    key = f"module.{spec.name}"
    if not MODULE_NAME.fullmatch(spec.name):
        raise fail(key, f"module name {spec.name!r} must be 1-64 letters, digits, '-' or '_'")
    if spec.abi not in ABIS:
        raise fail(f"{key}.abi", f"{spec.abi!r} is not an ABI; use 'wagi', 'reactor' or 'wasi-http'")
    if not MIN_MEMORY <= spec.memory_bytes <= MAX_MEMORY:
        raise fail(f"{key}.memory", f"{spec.memory_bytes} bytes is outside 64KiB..256MiB")
    if not 0 < spec.timeout_s <= MAX_TIMEOUT_S:  # NaN fails too
        raise fail(f"{key}.timeout", f"{spec.timeout_s:g}s is outside (0, {MAX_TIMEOUT_S:g}s]")
    if not 1 <= spec.max_output_bytes <= MAX_OUTPUT_BYTES:
        raise fail(f"{key}.max_output", f"{spec.max_output_bytes} bytes is outside 1B..64MiB")
    if len(spec.env) > MAX_ENV_VARS:
        raise fail(f"{key}.env", f"{len(spec.env)} variables; at most {MAX_ENV_VARS}")
    if sum(len(n.encode()) + len(v.encode()) for n, v in spec.env) > MAX_ENV_BYTES:
        raise fail(f"{key}.env", f"names and values exceed {MAX_ENV_BYTES} bytes together")
    for name, value in spec.env:
        problem = env_problem(name, value)
        if problem is not None:
            raise fail(f"{key}.env.{name}", problem)
    if len(spec.allowed_outbound_hosts) > MAX_OUTBOUND_HOSTS:
        raise fail(f"{key}.allowed_outbound_hosts", f"at most {MAX_OUTBOUND_HOSTS} entries")
    for index, item in enumerate(spec.allowed_outbound_hosts):
        problem = host_grant_problem(item)
        if problem is not None:
            raise fail(f"{key}.allowed_outbound_hosts[{index}]", problem)
    _check_outbound_limits(fail, key, spec)
    if spec.sha256 is not None and not SHA256.fullmatch(spec.sha256):
        raise fail(f"{key}.sha256", "must be 64 lower-case hex digits")


def _check_outbound_limits(fail: _Fail, key: str, spec: ModuleSpec) -> None:
    if not 1 <= spec.outbound_requests <= MAX_OUTBOUND_REQUESTS:
        raise fail(
            f"{key}.outbound_requests", f"{spec.outbound_requests} is outside 1..{MAX_OUTBOUND_REQUESTS}"
        )
    if not 1 <= spec.outbound_bytes <= MAX_OUTBOUND_BYTES:
        raise fail(f"{key}.outbound_bytes", f"{spec.outbound_bytes} bytes is outside 1B..64MiB")
    if not 0 < spec.outbound_timeout_s <= MAX_OUTBOUND_TIMEOUT_S:  # NaN fails too
        raise fail(
            f"{key}.outbound_timeout",
            f"{spec.outbound_timeout_s:g}s is outside (0, {MAX_OUTBOUND_TIMEOUT_S:g}s]",
        )


def _check_route(fail: _Fail, index: int, route: Route, policy: OriginPolicy) -> None:
    key = f"route[{index}]"
    problem = path_problem(route.path)
    if problem is not None:
        raise fail(f"{key}.path", problem)
    if (route.module is None) == (route.origin is None):
        raise fail(key, "needs exactly one of 'module' or 'origin'")
    if route.origin is not None:
        problem = origin_problem(route.origin, policy)
        if problem is not None:
            raise fail(f"{key}.origin", problem)


class _Fail:
    def __init__(self, source: str) -> None:
        self.source = source

    def __call__(self, key: str, reason: str) -> ManifestError:
        return ManifestError(self.source, key, reason)


def check_manifest(manifest: AppManifest, policy: OriginPolicy = DEFAULT_POLICY) -> None:
    """Raise ``ManifestError`` (file, key, reason) for the first rule ``manifest`` breaks."""
    fail = _Fail(manifest.source_path)
    if not NAME.fullmatch(manifest.name):
        raise fail("app.name", f"{manifest.name!r} must be 1-64 letters, digits, '.', '-' or '_'")
    if not VERSION.fullmatch(manifest.version):
        raise fail("app.version", f"{manifest.version!r} must be 1-128 letters, digits, '.', '_', '+' or '-'")
    if len(manifest.modules) > MAX_MODULES:
        raise fail("module", f"{len(manifest.modules)} modules; at most {MAX_MODULES}")
    for name, spec in manifest.modules.items():
        if name != spec.name:  # pragma: no cover - both builders key modules by their name
            raise fail(f"module.{name}", f"is named {spec.name!r}")
        _check_module(fail, spec)
    if not manifest.routes:
        raise fail("route", "needs at least one [[route]] table")
    if len(manifest.routes) > MAX_ROUTES:
        raise fail("route", f"{len(manifest.routes)} routes; at most {MAX_ROUTES}")
    seen: dict[str, int] = {}
    used: set[str] = set()
    for index, route in enumerate(manifest.routes):
        _check_route(fail, index, route, policy)
        if route.path in seen:
            raise fail(f"route[{index}].path", f"{route.path!r} is already route[{seen[route.path]}]")
        seen[route.path] = index
        if route.module is not None:
            if route.module not in manifest.modules:
                raise fail(f"route[{index}].module", f"no [module.{route.module}] is defined")
            used.add(route.module)
    unused = sorted(set(manifest.modules) - used)
    if unused:
        raise fail(f"module.{unused[0]}", "no route uses this module (remove it or add a route)")
