"""Outbound HTTP in the manifest: the grant grammar (the same as the node's policy) and the
per-invocation limits, parsed, checked and carried over the wire."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cpclient.apps import app_manifest
from manifest import ManifestError, parse_manifest
from manifest.model import DEFAULT_OUTBOUND_BYTES, DEFAULT_OUTBOUND_REQUESTS, DEFAULT_OUTBOUND_TIMEOUT_S
from manifest.rules import host_grant_problem
from protos.edgecdn.v1 import apps_pb2
from wasm_host.outbound_policy import HostGrant

BASE = Path("/srv/app")


def _doc(extra: str) -> str:
    return (
        '[app]\nname = "a"\nversion = "1"\n[[route]]\npath = "/x"\nmodule = "m"\n'
        f'[module.m]\nsource = "m.wasm"\n{extra}'
    )


def test_limits_parse_with_units_and_default() -> None:
    spec = parse_manifest(_doc(""), BASE).modules["m"]
    assert (spec.outbound_requests, spec.outbound_bytes, spec.outbound_timeout_s) == (
        DEFAULT_OUTBOUND_REQUESTS,
        DEFAULT_OUTBOUND_BYTES,
        DEFAULT_OUTBOUND_TIMEOUT_S,
    )
    extra = (
        'allowed_outbound_hosts = ["http://self"]\noutbound_requests = 2\n'
        'outbound_bytes = "64KiB"\noutbound_timeout = "250ms"\n'
    )
    spec = parse_manifest(_doc(extra), BASE).modules["m"]
    assert (spec.outbound_requests, spec.outbound_bytes, spec.outbound_timeout_s) == (2, 65536, 0.25)


@pytest.mark.parametrize(
    ("extra", "key", "reason"),
    [
        ("outbound_requests = 0", "module.m.outbound_requests", "outside 1..100"),
        ("outbound_requests = 101", "module.m.outbound_requests", "outside 1..100"),
        ('outbound_requests = "3"', "module.m.outbound_requests", "expected an integer"),
        ('outbound_bytes = "65MiB"', "module.m.outbound_bytes", "outside 1B..64MiB"),
        ('outbound_timeout = "2m"', "module.m.outbound_timeout", "outside (0, 60s]"),
        ('outbound_timeout = "5"', "module.m.outbound_timeout", "unit"),
        (
            'allowed_outbound_hosts = ["https://a*b.com"]',
            "module.m.allowed_outbound_hosts[0]",
            "scheme://host",
        ),
        ('allowed_outbound_hosts = ["https://x.com:70000"]', "module.m.allowed_outbound_hosts[0]", "port"),
    ],
)
def test_limits_and_grants_are_checked(extra: str, key: str, reason: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_doc(extra), BASE, "r.toml")
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_limits_travel_over_the_wire() -> None:
    ref = apps_pb2.ModuleRef(name="m", sha256="0" * 64, allowed_outbound_hosts=["http://self"])
    ref.outbound_requests = 3
    ref.outbound_bytes = 1000
    ref.outbound_timeout.FromMilliseconds(1500)
    app = apps_pb2.AppVersion(
        name="a", version="1", modules=[ref], routes=[apps_pb2.Route(path="/x", module="m")]
    )
    spec = app_manifest(app).modules["m"]
    assert (spec.outbound_requests, spec.outbound_bytes, spec.outbound_timeout_s) == (3, 1000, 1.5)
    plain = apps_pb2.AppVersion(
        name="a", version="1", modules=[apps_pb2.ModuleRef(name="m", sha256="0" * 64)], routes=app.routes
    )
    spec = app_manifest(plain).modules["m"]
    assert spec.outbound_requests == DEFAULT_OUTBOUND_REQUESTS
    assert spec.outbound_timeout_s == DEFAULT_OUTBOUND_TIMEOUT_S


grant_like = st.builds(
    lambda scheme, host, port: f"{scheme}://{host}{port}",
    st.sampled_from(["http", "https", "*", "ftp", ""]),
    st.from_regex(r"(\*|\*\.[a-z0-9.-]{1,12}|[a-z0-9*.-]{1,12}|self|\[::1\])", fullmatch=True),
    st.sampled_from(["", ":*", ":80", ":0", ":65535", ":65536", ":x"]),
)


@given(grant_like)
def test_the_manifest_accepts_exactly_the_grants_the_node_parses(text: str) -> None:
    try:
        HostGrant.parse(text)
        parsed = True
    except ValueError:
        parsed = False
    assert (host_grant_problem(text) is None) == parsed
