"""Who is the client? The peer address, unless the peer is a trusted proxy (edge nodes and the router).

Only a trusted proxy (the router, a load balancer named with ``--trusted-proxy``) may tell
us the original client through ``X-Forwarded-For`` or ``Forwarded``; from anyone else
those headers, and any geo or edge header the client sent, are removed and never believed.
Pure code: no I/O.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Headers only the edge may set: what a client sends under these names is dropped.
RESERVED_HEADER_PREFIXES = ("x-geo-", "x-edge-")
RESERVED_HEADERS = frozenset({"cf-ipcountry", "cf-connecting-ip", "true-client-ip"})
FORWARDING_HEADERS = frozenset({"x-forwarded-for", "forwarded", "x-real-ip"})


@dataclass(frozen=True, slots=True, kw_only=True)
class ClientIdentity:
    """The client address we believe, and whether the request came through a trusted proxy."""

    address: str
    via_trusted_proxy: bool


def parse_networks(values: Iterable[str]) -> tuple[IPNetwork, ...]:
    """Parse CIDRs (or single addresses) for ``--trusted-proxy``; ValueError names the bad one."""
    networks = []
    for value in values:
        try:
            networks.append(ipaddress.ip_network(value.strip(), strict=False))
        except ValueError as exc:
            raise ValueError(f"{value!r} is not an IP address or CIDR block") from exc
    return tuple(networks)


def is_trusted(peer: str, trusted: tuple[IPNetwork, ...]) -> bool:
    if not trusted:
        return False  # the common case for a node without proxies: no address parsing
    return _in_networks(peer, trusted)


# Parsing an address with ipaddress costs ~4.7 µs, and an edge node behind a router asks
# about the same few peers (the router, and each client in the forwarding chain) on every
# request, two or three times each; a cache hit costs ~0.4 µs.
@functools.lru_cache(maxsize=4096)
def _in_networks(address: str, networks: tuple[IPNetwork, ...]) -> bool:
    parsed = _parse_address(address)
    return parsed is not None and any(parsed in network for network in networks)


def resolve_client(
    peer: str, *, forwarded_for: str | None, forwarded: str | None, trusted: tuple[IPNetwork, ...]
) -> ClientIdentity:
    """The client behind ``peer``, walking the forwarding chain right to left.

    Each hop appends the address it saw, so the rightmost entry was added by the peer.
    We step left while the hop we are looking at is itself trusted, and stop at the first
    untrusted address: that is the client (anything further left could be forged).
    """
    if not is_trusted(peer, trusted):
        return ClientIdentity(address=peer, via_trusted_proxy=False)
    chain = _forwarded_chain(forwarded) or _xff_chain(forwarded_for)
    client = peer
    for hop in reversed(chain):
        client = hop
        if not is_trusted(hop, trusted):
            break
    return ClientIdentity(address=client, via_trusted_proxy=True)


def is_reserved_header(name: str) -> bool:
    """A header a client must not set itself (geo facts, edge facts, forwarding chain)."""
    lower = name.lower()
    return (
        lower in RESERVED_HEADERS or lower in FORWARDING_HEADERS or lower.startswith(RESERVED_HEADER_PREFIXES)
    )


def _parse_address(value: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(value.strip().split("%", 1)[0])
    except ValueError:
        return None


def _xff_chain(header: str | None) -> list[str]:
    if not header:
        return []
    hops = [part.strip() for part in header.split(",")]
    return [hop for hop in hops if _parse_address(hop) is not None]


def _forwarded_chain(header: str | None) -> list[str]:
    """Addresses from RFC 7239 ``Forwarded: for=...`` elements, in order."""
    if not header:
        return []
    hops = []
    for element in header.split(","):
        for pair in element.split(";"):
            key, _, value = pair.strip().partition("=")
            if key.lower() != "for":
                continue
            value = value.strip().strip('"')
            if value.startswith("["):  # [2001:db8::1]:4711
                value = value[1:].split("]", 1)[0]
            elif value.count(":") == 1:  # 192.0.2.1:4711
                value = value.split(":", 1)[0]
            if _parse_address(value) is not None:
                hops.append(value)
    return hops
