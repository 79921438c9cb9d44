"""Client resolution: trusted proxies only, right-to-left, forged hops ignored."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from geo.forwarding import is_reserved_header, parse_networks, resolve_client

ROUTER = "127.0.0.1"
TRUSTED = parse_networks(["127.0.0.1/32", "10.0.0.0/8"])


def test_untrusted_peer_is_the_client_whatever_it_claims() -> None:
    identity = resolve_client("127.82.0.5", forwarded_for="203.0.113.9", forwarded=None, trusted=TRUSTED)
    assert identity.address == "127.82.0.5"
    assert not identity.via_trusted_proxy


def test_trusted_peer_passes_on_the_client() -> None:
    identity = resolve_client(ROUTER, forwarded_for="127.82.0.5", forwarded=None, trusted=TRUSTED)
    assert identity.address == "127.82.0.5"
    assert identity.via_trusted_proxy


def test_chain_stops_at_the_first_untrusted_hop() -> None:
    # The client forged "1.2.3.4"; the real client is the one our trusted proxy saw.
    identity = resolve_client(
        ROUTER, forwarded_for="1.2.3.4, 127.82.0.5, 10.1.1.1", forwarded=None, trusted=TRUSTED
    )
    assert identity.address == "127.82.0.5"


def test_rfc7239_forwarded_wins_over_xff() -> None:
    identity = resolve_client(
        ROUTER,
        forwarded_for="127.9.9.9",
        forwarded='for=192.0.2.60;proto=http, for="[2001:db8:cafe::17]:4711"',
        trusted=TRUSTED,
    )
    assert identity.address == "2001:db8:cafe::17"


def test_garbage_hops_are_skipped() -> None:
    identity = resolve_client(ROUTER, forwarded_for="not-an-ip, 127.82.0.5", forwarded=None, trusted=TRUSTED)
    assert identity.address == "127.82.0.5"


def test_bad_network_is_named() -> None:
    with pytest.raises(ValueError, match="'banana'"):
        parse_networks(["banana"])


@pytest.mark.parametrize(
    ("name", "reserved"),
    [
        ("CF-IPCountry", True),
        ("x-geo-country", True),
        ("X-Edge-Region", True),
        ("X-Forwarded-For", True),
        ("accept", False),
        ("x-georgia", False),
    ],
)
def test_reserved_headers(name: str, reserved: bool) -> None:
    assert is_reserved_header(name) is reserved


@given(
    peer=st.ip_addresses(v=4).map(str),
    chain=st.lists(st.ip_addresses(v=4).map(str), max_size=5),
)
def test_untrusted_peer_never_trusts_the_chain(peer: str, chain: list[str]) -> None:
    trusted = parse_networks(["10.0.0.0/8"])
    if ipaddress.ip_address(peer) in trusted[0]:
        return
    identity = resolve_client(peer, forwarded_for=", ".join(chain), forwarded=None, trusted=trusted)
    assert identity.address == peer


@given(chain=st.lists(st.ip_addresses(v=4).map(str), min_size=1, max_size=5))
def test_resolved_client_is_from_the_chain_or_the_peer(chain: list[str]) -> None:
    identity = resolve_client(ROUTER, forwarded_for=", ".join(chain), forwarded=None, trusted=TRUSTED)
    assert identity.address in [*chain, ROUTER]
