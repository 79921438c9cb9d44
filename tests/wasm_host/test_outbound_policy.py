"""The outbound URL policy: table tests of grants against URLs, and its invariants."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given
from hypothesis import strategies as st

from manifest import rules
from wasm_host.outbound_policy import (
    BLOCKED_HOSTS,
    BLOCKED_NETWORKS,
    Allowed,
    HostGrant,
    NetworkAllowance,
    Refused,
    check_url,
    parse_grants,
    parse_target,
    redirect_method,
    redirect_target,
)

CASES = [
    # (grants, url, allowed?)
    (["https://api.example.com"], "https://api.example.com/v1?x=1", True),
    (["https://api.example.com"], "https://API.Example.com./v1", True),
    (["https://api.example.com"], "http://api.example.com/v1", False),  # scheme
    (["https://api.example.com"], "https://api.example.com:8443/", False),  # default port only
    (["https://api.example.com"], "https://api.example.com:443/", True),
    (["https://api.example.com:8443"], "https://api.example.com:8443/", True),
    (["https://api.example.com:*"], "https://api.example.com:9/", True),
    (["*://api.example.com"], "http://api.example.com/", True),
    (["*://api.example.com"], "https://api.example.com/", True),
    (["*://api.example.com"], "http://api.example.com:443/", False),  # http's default is 80
    (["https://*.example.com"], "https://a.example.com/", True),
    (["https://*.example.com"], "https://a.b.example.com/", True),
    (["https://*.example.com"], "https://example.com/", False),  # not the apex
    (["https://*.example.com"], "https://badexample.com/", False),
    (["https://*.example.com"], "https://example.com.evil.org/", False),
    (["https://*"], "https://anything.org/", True),
    (["*://*:*"], "http://127.0.0.1:8080/", True),
    (["http://127.0.0.1:8080"], "http://127.0.0.1:8080/shop", True),
    (["http://127.0.0.1:8080"], "http://127.0.0.2:8080/shop", False),
    (["http://[::1]:8080"], "http://[::1]:8080/", True),
    (["http://self"], "/shop/weather?country=KR", True),
    (["http://self"], "http://self/shop", True),
    (["*://*:*"], "/shop/weather", False),  # self is only ever granted by name
    (["https://api.example.com"], "/shop", False),
    ([], "https://api.example.com/", False),
    (["https://api.example.com"], "ftp://api.example.com/", False),
    (["https://api.example.com"], "https://user:pw@api.example.com/", False),
    (["https://api.example.com"], "https://api.example.com/a b", False),
    (["https://api.example.com"], "//api.example.com/", False),
]


@pytest.mark.parametrize(("grants", "url", "allowed"), CASES)
def test_grants_against_urls(grants: list[str], url: str, allowed: bool) -> None:
    decision = check_url(url, parse_grants(grants))
    assert isinstance(decision, Allowed) == allowed, decision


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://2852039166/",  # 169.254.169.254 as one number
        "http://0xa9fea9fe/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fe80::1]/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://100.100.100.200/",
    ],
)
def test_metadata_addresses_are_refused_whatever_the_grants(url: str) -> None:
    decision = check_url(url, parse_grants(["*://*:*", "http://169.254.169.254"]))
    assert isinstance(decision, Refused)
    assert decision.reason == "blocked-address"
    assert "--allow-outbound-network" in decision.message


def test_the_operator_may_allow_a_metadata_network() -> None:
    allowance = NetworkAllowance.parse(["169.254.0.0/16", "metadata.google.internal"])
    grants = parse_grants(["http://169.254.169.254", "http://metadata.google.internal"])
    assert isinstance(check_url("http://169.254.169.254/x", grants, allowance), Allowed)
    assert isinstance(check_url("http://metadata.google.internal/", grants, allowance), Allowed)
    # Allowed by the operator is not granted by the module.
    assert isinstance(check_url("http://169.254.1.1/", grants, allowance), Refused)


def test_refusals_say_why() -> None:
    refused = check_url("https://other.org/", parse_grants(["https://api.example.com"]))
    assert refused == Refused(
        "not-allowed", "https://other.org:443 is not in the module's allowed_outbound_hosts"
    )
    bad = check_url("not a url", ())
    assert isinstance(bad, Refused)
    assert bad.reason == "invalid-url"


@pytest.mark.parametrize(
    "text",
    [
        "api.example.com",
        "https://",
        "https://a*b.com",
        "https://x.com:99999",
        "gopher://x.com",
        "https://x.com/path",
    ],
)
def test_malformed_grants_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match=r"scheme://host|port"):
        HostGrant.parse(text)


def test_redirects_resolve_against_the_answering_url() -> None:
    target = parse_target("https://api.example.com/a/b?q=1")
    assert not isinstance(target, Refused)
    assert redirect_target(target, 302, "/c") == "https://api.example.com/c"
    assert redirect_target(target, 301, "d") == "https://api.example.com/a/d"
    assert redirect_target(target, 307, "https://evil.org/") == "https://evil.org/"
    assert redirect_target(target, 200, "/c") is None
    assert redirect_target(target, 302, None) is None
    own = parse_target("/shop/a")
    assert not isinstance(own, Refused)
    assert own.is_self
    assert redirect_target(own, 302, "/shop/b") == "http://self/shop/b"
    assert redirect_method("POST", 303) == "GET"
    assert redirect_method("POST", 307) == "POST"
    assert redirect_method("HEAD", 303) == "HEAD"


def test_blocked_lists_match_the_manifest_rules() -> None:
    assert BLOCKED_NETWORKS == rules.BLOCKED_NETWORKS
    assert BLOCKED_HOSTS == rules.BLOCKED_HOSTS


# --- invariants ----------------------------------------------------------------------------

labels = st.from_regex(r"[a-z0-9]([a-z0-9-]{0,8}[a-z0-9])?", fullmatch=True)
names = st.lists(labels, min_size=1, max_size=4).map(".".join)
schemes = st.sampled_from(["http", "https"])
ports = st.one_of(st.none(), st.integers(1, 65535))
grant_texts = st.builds(
    lambda scheme, wild, host, port: f"{scheme}://{wild}{host}{'' if port is None else f':{port}'}",
    st.sampled_from(["http", "https", "*"]),
    st.sampled_from(["", "*."]),
    st.one_of(names, st.just("self")),
    st.one_of(st.none(), st.just("*"), st.integers(1, 65535)),
)
urls = st.builds(
    lambda scheme, host, port, path: f"{scheme}://{host}{'' if port is None else f':{port}'}/{path}",
    schemes,
    names,
    ports,
    labels,
)


@given(st.lists(grant_texts, max_size=4), urls)
def test_an_allowed_url_is_covered_by_a_grant(grants: list[str], url: str) -> None:
    parsed = parse_grants(grants)
    decision = check_url(url, parsed)
    if isinstance(decision, Allowed):
        assert any(grant.matches(decision.target) for grant in parsed)
        # The decision is about the host, whatever its case.
        upper = url.replace(decision.target.host, decision.target.host.upper(), 1)
        assert isinstance(check_url(upper, parsed), Allowed)


@given(urls)
def test_no_grant_allows_nothing(url: str) -> None:
    assert isinstance(check_url(url, ()), Refused)


@given(st.ip_addresses(network="169.254.0.0/16"), schemes, st.lists(grant_texts, max_size=3))
def test_link_local_is_never_allowed_by_grants_alone(
    address: ipaddress.IPv4Address, scheme: str, grants: list[str]
) -> None:
    everything = parse_grants([*grants, "*://*:*", f"*://{address}:*"])
    decision = check_url(f"{scheme}://{address}/", everything)
    assert isinstance(decision, Refused)
    assert decision.reason == "blocked-address"


@given(st.lists(grant_texts, max_size=4), urls, st.sampled_from([301, 302, 303, 307, 308]), urls)
def test_a_redirect_is_judged_like_a_first_request(
    grants: list[str], url: str, status: int, location: str
) -> None:
    parsed = parse_grants(grants)
    first = parse_target(url)
    assert not isinstance(first, Refused)
    followed = redirect_target(first, status, location)
    assert followed is not None
    assert check_url(followed, parsed) == check_url(location, parsed)
