"""Which outbound URLs a module may fetch: its ``allowed_outbound_hosts`` against a URL.

Pure decisions, taken before any name resolution or socket (docs/abi.md, "Outbound HTTP"):

- A grant is Spin's ``scheme://host[:port]``: scheme ``http``, ``https`` or ``*``; host a
  name, an address, ``*`` (any host) or ``*.domain`` (any name under ``domain``, at any
  depth, not ``domain`` itself); port a number or ``*``, by default the scheme's own (80,
  443), so ``https://api.example.com`` grants port 443 only. Hosts compare without case
  and without a final dot.
- ``self`` as the host (``http://self``, ``*://self``) grants the app's own origin routes:
  the guest names them by a path (``/shop/weather``) or as ``http://self/shop/weather``;
  the node checks that the path is an origin route.
- Whatever the grants, a URL on a link-local or cloud metadata address (``169.254.0.0/16``,
  ``fe80::/10``, ``fd00:ec2::254``, ``100.100.100.200``, and the metadata host names;
  numeric spellings a resolver accepts count as the address they spell) is refused unless
  the operator's ``NetworkAllowance`` lets it through. The list is ``manifest.rules``'s,
  kept equal by a test: wasm_host imports nothing outside itself.
- A redirect's target (``redirect_target``) is checked by the same ``check_url``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

SELF_HOST = "self"
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_CHARS = 2048

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
RefusalReason = Literal["invalid-url", "not-allowed", "blocked-address"]

BLOCKED_NETWORKS: tuple[Network, ...] = (
    ipaddress.ip_network("169.254.0.0/16"),  # IPv4 link-local: every cloud's metadata service
    ipaddress.ip_network("fe80::/10"),  # IPv6 link-local
    ipaddress.ip_network("fd00:ec2::254/128"),  # AWS metadata over IPv6
    ipaddress.ip_network("100.100.100.200/32"),  # Alibaba Cloud metadata
)
BLOCKED_HOSTS = frozenset(
    {"metadata", "metadata.google.internal", "metadata.goog", "instance-data", "instance-data.ec2.internal"}
)
_GRANT = re.compile(
    r"(?P<scheme>\*|https?)://(?P<host>\*|(\*\.)?[a-z0-9]([a-z0-9.-]*[a-z0-9])?|\[[0-9a-f:.]+\])"
    r"(:(?P<port>\*|\d{1,5}))?",
    re.IGNORECASE,
)
_NUMERIC_HOST = re.compile(r"[0-9a-fA-FxX.]+")


def normal_host(host: str) -> str:
    """A host as grants and targets compare it: lower case, no final dot, no brackets."""
    return host.lower().rstrip(".").removeprefix("[").removesuffix("]")


def host_address(host: str) -> Address | None:
    """The address a literal host names, including the forms a resolver also accepts
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


@dataclass(frozen=True, slots=True, kw_only=True)
class HostGrant:
    """One ``allowed_outbound_hosts`` entry, parsed."""

    scheme: str  # "http", "https" or "*"
    host: str  # normal_host form: a name or address, "*", "*.domain" or "self"
    port: int | None  # None: the scheme's default port
    any_port: bool = False

    @classmethod
    def parse(cls, text: str) -> HostGrant:
        """The grant ``text`` spells; ValueError saying what is wrong."""
        match = _GRANT.fullmatch(text.strip())
        if match is None:
            raise ValueError(
                f"{text!r} is not 'scheme://host[:port]' (scheme http, https or *; host a name, "
                "'*', '*.domain' or 'self'; port a number or '*')"
            )
        port_text = match["port"]
        port: int | None = None
        if port_text is not None and port_text != "*":
            port = int(port_text)
            if not 1 <= port <= 65535:
                raise ValueError(f"{text!r}: port {port} is outside 1..65535")
        return cls(
            scheme=match["scheme"].lower(),
            host=normal_host(match["host"]),
            port=port,
            any_port=port_text == "*",
        )

    def matches(self, target: Target) -> bool:
        """True when this grant covers ``target``'s scheme, host and port."""
        if self.scheme not in ("*", target.scheme):
            return False
        if not self.any_port and target.port != (self.port or DEFAULT_PORTS[target.scheme]):
            return False
        if self.host == "*":
            return target.host != SELF_HOST
        if self.host.startswith("*."):
            return target.host.endswith(self.host[1:])
        return self.host == target.host


@dataclass(frozen=True, slots=True, kw_only=True)
class Target:
    """An outbound URL split as the policy judges it; ``is_self`` for the app's own routes
    (then ``path_query`` is what the node routes, and ``url`` is ``http://self`` + it)."""

    url: str
    scheme: str
    host: str
    port: int
    path_query: str

    @property
    def is_self(self) -> bool:
        return self.host == SELF_HOST


@dataclass(frozen=True, slots=True, kw_only=True)
class NetworkAllowance:  # hashable: hosts keep decisions per allowance
    """The link-local and metadata networks and hosts the operator lets handlers reach
    (none by default): the node's ``--allow-outbound-network`` values."""

    networks: tuple[Network, ...] = ()
    hosts: frozenset[str] = frozenset()

    @classmethod
    def parse(cls, values: Iterable[str]) -> NetworkAllowance:
        """From CIDRs (``169.254.10.0/24``) and host names; ValueError naming a bad value."""
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
            hosts.add(normal_host(text))
        return cls(networks=tuple(networks), hosts=frozenset(hosts))

    def allows(self, host: str, address: Address | None) -> bool:
        if host in self.hosts:
            return True
        return address is not None and any(address in network for network in self.networks)


NO_ALLOWANCE = NetworkAllowance()


@dataclass(frozen=True, slots=True)
class Allowed:
    target: Target


@dataclass(frozen=True, slots=True)
class Refused:
    reason: RefusalReason
    message: str


def parse_grants(items: Iterable[str]) -> tuple[HostGrant, ...]:
    """Every grant of a module; ValueError for the first malformed one."""
    return tuple(HostGrant.parse(item) for item in items)


def parse_target(url: str) -> Target | Refused:
    """``url`` as a ``Target``: absolute http(s), or a path (``/x?y``) meaning ``self``."""
    if not url or len(url) > MAX_URL_CHARS:
        return Refused("invalid-url", f"a URL has 1 to {MAX_URL_CHARS} characters, got {len(url)}")
    if " " in url or not url.isprintable():
        return Refused("invalid-url", f"{url!r} contains spaces or control characters")
    if url.startswith("/") and not url.startswith("//"):
        url = "http://" + SELF_HOST + url
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as exc:
        return Refused("invalid-url", f"{url!r} is not a URL: {exc}")
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return Refused("invalid-url", f"{url!r} is not an http(s) URL with a host, nor a path")
    if parts.username is not None or parts.password is not None:
        return Refused("invalid-url", f"{url!r} carries credentials; send them in a header")
    host = normal_host(parts.hostname)
    path_query = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(
        url=f"{scheme}://{parts.netloc}{path_query}",
        scheme=scheme,
        host=host,
        port=port if port is not None else DEFAULT_PORTS[scheme],
        path_query=path_query,
    )


def check_url(
    url: str, grants: tuple[HostGrant, ...], allowance: NetworkAllowance = NO_ALLOWANCE
) -> Allowed | Refused:
    """Whether a module holding ``grants`` may fetch ``url``, and the parsed target if so."""
    target = parse_target(url)
    if isinstance(target, Refused):
        return target
    host = target.host
    address = host_address(host)
    if not allowance.allows(host, address):
        blocked = next((n for n in BLOCKED_NETWORKS if address is not None and address in n), None)
        if blocked is not None or host in BLOCKED_HOSTS:
            where = f"in {blocked}" if blocked is not None else "a cloud metadata host"
            return Refused(
                "blocked-address",
                f"{target.url} is on a link-local or metadata address ({where}); refused unless the "
                "node's operator allows it (--allow-outbound-network)",
            )
    if not any(grant.matches(target) for grant in grants):
        shown = f"{target.scheme}://{host}:{target.port}"
        return Refused("not-allowed", f"{shown} is not in the module's allowed_outbound_hosts")
    return Allowed(target)


REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})


def redirect_target(current: Target, status: int, location: str | None) -> str | None:
    """The absolute URL a redirect answer points at (relative ``Location`` resolved against
    the URL that answered), or None when the answer is not a redirect to follow."""
    if status not in REDIRECT_STATUSES or not location:
        return None
    return urljoin(current.url, location.strip())


def redirect_method(method: str, status: int) -> str:
    """The method of the request a redirect leads to (RFC 9110 15.4: 303 makes it a GET, and
    301/302 turn a POST into a GET as every browser does)."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status in (301, 302) and method == "POST":
        return "GET"
    return method
