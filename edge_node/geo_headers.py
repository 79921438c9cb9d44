"""The geo and edge facts a handler receives as request headers. Pure code.

Cloudflare-compatible ``cf-ipcountry`` plus ``x-geo-*`` and ``x-edge-*``; ``XX`` is
Cloudflare's code for an unknown country, and we follow it so handlers written for
Workers behave the same here.
"""

from __future__ import annotations

from dataclasses import dataclass

from geo.lookup import Location

UNKNOWN_COUNTRY = "XX"


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeIdentity:
    """Which node, region and PoP this is."""

    node_id: str
    region: str
    pop: str


def geo_headers(location: Location, node: NodeIdentity) -> list[tuple[str, str]]:
    """Headers that tell a handler where its client is and where it is being served."""
    country = location.country or UNKNOWN_COUNTRY
    headers = [
        ("cf-ipcountry", country),
        ("x-geo-country", country),
        ("x-geo-continent", location.continent or ""),
        ("x-geo-city", location.city or ""),
        ("x-geo-latitude", "" if location.latitude is None else f"{location.latitude:.4f}"),
        ("x-geo-longitude", "" if location.longitude is None else f"{location.longitude:.4f}"),
    ]
    headers.extend(edge_headers(node))
    return headers


def edge_headers(node: NodeIdentity) -> list[tuple[str, str]]:
    """Headers naming the serving node (sent to handlers and back to clients)."""
    return [("x-edge-region", node.region), ("x-edge-pop", node.pop), ("x-edge-node", node.node_id)]
