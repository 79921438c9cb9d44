"""The one set of app rules: origins on link-local and metadata addresses, paths, unused
modules, bounds that every node can honour."""

from __future__ import annotations

from pathlib import Path

import pytest

from manifest import ManifestError, OriginPolicy, parse_manifest
from manifest.rules import MAX_MEMORY, host_address, origin_problem, path_problem
from wasm_host.config import EngineConfig, Limits

BASE = Path("/srv/app")


def _origin_doc(origin: str) -> str:
    return f'[app]\nname = "a"\nversion = "1"\n[[route]]\npath = "/..."\norigin = "{origin}"\n'


@pytest.mark.parametrize(
    "origin",
    [
        "http://169.254.169.254/",
        "http://169.254.169.254/latest/meta-data/",
        "https://169.254.0.1:8443",
        "http://[fe80::1]/",
        "http://[fe80::1%25eth0]/",
        "http://[::ffff:169.254.169.254]/",
        "http://[fd00:ec2::254]/",
        "http://100.100.100.200/",
        "http://metadata.google.internal/computeMetadata/v1/",
        "http://METADATA.google.internal./",
        "http://metadata/",
        "http://instance-data/",
        "http://2852039166/",  # 169.254.169.254 as one number: resolvers take it
        "http://0xa9fea9fe/",
        "http://169.254.43518/",
    ],
)
def test_link_local_and_metadata_origins_are_refused(origin: str) -> None:
    problem = origin_problem(origin)
    assert problem is not None
    assert "--allow-origin-network" in problem
    with pytest.raises(ManifestError) as caught:
        parse_manifest(_origin_doc(origin), BASE, "o.toml")
    assert caught.value.key == "route[0].origin"


@pytest.mark.parametrize(
    "origin",
    ["http://127.0.0.1:9000", "https://origin.example.com", "http://[::1]:8080/", "http://10.0.0.1/"],
)
def test_ordinary_origins_pass(origin: str) -> None:
    assert origin_problem(origin) is None


def test_the_operator_can_allow_a_network_or_a_host() -> None:
    policy = OriginPolicy.parse(["169.254.10.0/24", "metadata.google.internal", "fe80::/64"])
    assert origin_problem("http://169.254.10.7/", policy) is None
    assert origin_problem("http://169.254.169.254/", policy) is not None  # not in the /24
    assert origin_problem("http://metadata.google.internal/", policy) is None
    assert origin_problem("http://[fe80::2]/", policy) is None
    manifest = parse_manifest(_origin_doc("http://169.254.10.7/"), BASE, "o.toml", origins=policy)
    assert manifest.routes[0].origin == "http://169.254.10.7/"
    with pytest.raises(ValueError, match="neither a CIDR"):
        OriginPolicy.parse(["not a network!"])


def test_numeric_hosts_read_as_a_resolver_would() -> None:
    assert str(host_address("2852039166")) == "169.254.169.254"
    assert str(host_address("::ffff:169.254.169.254")) == "169.254.169.254"
    assert host_address("example.com") is None
    assert host_address("deadbeef.example") is None


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/a\x00b", "control character"),
        ("/a\nb", "control character"),
        ("/a\x7f", "control character"),
        ("/" + "a" * 1024, "longer than"),
        ("x", "start with '/'"),
    ],
)
def test_paths_with_control_characters_are_refused(path: str, reason: str) -> None:
    problem = path_problem(path)
    assert problem is not None
    assert reason in problem


def _doc(extra: str = "", route: str = 'path = "/x"\nmodule = "m"') -> str:
    return f'[app]\nname = "a"\nversion = "1"\n[[route]]\n{route}\n[module.m]\nsource = "m.wasm"\n{extra}'


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (_doc() + '[module.spare]\nsource = "s.wasm"\n', "module.spare", "no route uses"),
        (_doc("memory = 9223372036854775807"), "module.m.memory", "outside 64KiB..256MiB"),
        (_doc('memory = "257MiB"'), "module.m.memory", "outside"),
        (_doc('timeout = "1h"'), "module.m.timeout", "outside"),
        (_doc('max_output = "65MiB"'), "module.m.max_output", "outside"),
        (_doc('env = { X = "a\\u0000b" }'), "module.m.env.X", "NUL"),
        (_doc(route='path = "/a\\u0000b"\nmodule = "m"'), "route[0].path", "control character"),
        (_doc(route='path = "/x"\norigin = "http://169.254.169.254/"'), "route[0].origin", "link-local"),
        (
            '[app]\nname = "a"\nversion = "1 beta"\n[[route]]\npath="/"\norigin="http://x"',
            "app.version",
            "1-128",
        ),
    ],
)
def test_rules_the_parser_applies(text: str, key: str, reason: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, BASE, "r.toml")
    assert caught.value.key == key
    assert reason in caught.value.reason


def test_every_memory_cap_the_rules_allow_fits_the_nodes_engine() -> None:
    assert EngineConfig().pool_max_memory_bytes == MAX_MEMORY
    Limits(memory_bytes=MAX_MEMORY, timeout_s=60.0)
