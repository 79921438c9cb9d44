"""The manifest parser: the issue's example, every error naming file, key and reason, Hypothesis."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from manifest import ManifestError, load_manifest, parse_manifest, read_module
from manifest.rules import RESERVED_ENV
from wasm_host.cgi import RESERVED_ENV as HOST_RESERVED_ENV

ISSUE_EXAMPLE = """
[app]
name = "geo-hello"
version = "1.0.0"

[[route]]
path = "/hello"            # exact path; "/api/..." matches the prefix
module = "geo-hello"

[module.geo-hello]
source = "geo_hello.wasm"  # relative to the manifest
abi = "wagi"               # or "reactor"
memory = "16MiB"
timeout = "100ms"
env = { GREETING = "hi" }
"""
BASE = Path("/srv/app")
APP = '[app]\nname="a"\nversion="1"\n'


def test_the_issue_example() -> None:
    manifest = parse_manifest(ISSUE_EXAMPLE, BASE, "app.toml")
    assert (manifest.name, manifest.version) == ("geo-hello", "1.0.0")
    spec = manifest.modules["geo-hello"]
    assert spec.source == BASE / "geo_hello.wasm"
    assert (spec.abi, spec.memory_bytes, spec.timeout_s) == ("wagi", 16 * 1024**2, 0.1)
    assert spec.env == (("GREETING", "hi"),)
    route = manifest.match("/hello")
    assert route is not None
    assert manifest.module_for(route) is spec
    assert manifest.match("/hello/x") is None


def test_origin_routes_and_prefixes() -> None:
    text = """
[app]
name = "site"
version = "2"
[[route]]
path = "/..."
origin = "https://origin.example.com"
[[route]]
path = "/api/..."
module = "api"
[module.api]
source = "../mods/api.wasm"
abi = "reactor"
memory = "32MiB"
timeout = "1.5s"
max_output = "4MiB"
allowed_outbound_hosts = ["https://db.example.com", "https://*.cdn.example.com:443"]
sha256 = "%s"
""" % ("0" * 64)
    manifest = parse_manifest(text, BASE, "site.toml")
    api = manifest.modules["api"]
    assert api.source == Path("/srv/mods/api.wasm")
    assert (api.abi, api.memory_bytes, api.timeout_s, api.max_output_bytes) == (
        "reactor",
        32 * 1024**2,
        1.5,
        4 * 1024**2,
    )
    assert api.allowed_outbound_hosts == ("https://db.example.com", "https://*.cdn.example.com:443")
    root = manifest.match("/index.html")
    assert root is not None
    assert root.origin == "https://origin.example.com"
    assert manifest.module_for(root) is None
    api_route = manifest.match("/api/users")
    assert api_route is not None
    assert api_route.module == "api"


def _toml(value: object) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{_toml(k)} = {_toml(v)}" for k, v in value.items()) + " }"
    if isinstance(value, str):
        escaped = "".join(
            f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in value
        )
        return f'"{escaped}"'
    return json.dumps(value)


def _doc(**module: object) -> str:
    lines = ['[app]\nname = "a"\nversion = "1"\n[[route]]\npath = "/x"\nmodule = "m"\n[module.m]']
    module.setdefault("source", "m.wasm")
    lines += [f"{key} = {_toml(value)}" for key, value in module.items()]
    return "\n".join(lines)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        ("[app\n", "", "not valid TOML"),
        ('[[route]]\npath="/"\nmodule="m"', "app", "is required"),
        ('[app]\nname="a"\n', "app.version", "is required"),
        ('[app]\nname="no spaces"\nversion="1"', "app.name", "must be 1-64"),
        ('[app]\nname="a"\nversion="1"\nauthor="me"', "app.author", "unknown key"),
        ('[app]\nname="a"\nversion="1"\n[extra]', "extra", "unknown key"),
        ('[app]\nname="a"\nversion="1"', "route", "at least one"),
        ('[app]\nname="a"\nversion="1"\n[[route]]\npath="x"\nmodule="m"', "route[0].path", "start with '/'"),
        (
            '[app]\nname="a"\nversion="1"\n[[route]]\npath="/a/.../b"\nmodule="m"',
            "route[0].path",
            "final '/...'",
        ),
        ('[app]\nname="a"\nversion="1"\n[[route]]\npath="/a?b"\nmodule="m"', "route[0].path", "plain path"),
        ('[app]\nname="a"\nversion="1"\n[[route]]\npath="/a"', "route[0]", "exactly one"),
        (
            '[app]\nname="a"\nversion="1"\n[[route]]\npath="/a"\nmodule="nope"',
            "route[0].module",
            "no [module.nope]",
        ),
        (
            '[app]\nname="a"\nversion="1"\n[[route]]\npath="/a"\norigin="ftp://x"',
            "route[0].origin",
            "http(s) URL",
        ),
        (_doc(timout="1s"), "module.m.timout", "unknown key"),
        (_doc(abi="wasi-nn"), "module.m.abi", "not an ABI"),
        (_doc(memory="16 XB"), "module.m.memory", "unknown size unit"),
        (_doc(memory="1KiB"), "module.m.memory", "outside 64KiB"),
        (_doc(memory="8GiB"), "module.m.memory", "outside 64KiB"),
        (_doc(timeout="100"), "module.m.timeout", "no unit"),
        (_doc(timeout="2m"), "module.m.timeout", "outside"),
        (_doc(timeout=5), "module.m.timeout", "expected a duration"),
        (_doc(source="/abs/m.wasm"), "module.m.source", "relative"),
        (_doc(env={"HTTP_CF_IPCOUNTRY": "US"}), "module.m.env.HTTP_CF_IPCOUNTRY", "set by the host"),
        (_doc(env={"PATH_INFO": "/"}), "module.m.env.PATH_INFO", "set by the host"),
        (_doc(env={"1BAD": "x"}), "module.m.env.1BAD", "not a valid"),
        (_doc(env={"N": 1}), "module.m.env.N", "expected a string"),
        (_doc(allowed_outbound_hosts="x"), "module.m.allowed_outbound_hosts", "list"),
        (_doc(allowed_outbound_hosts=["db.example.com"]), "module.m.allowed_outbound_hosts[0]", "scheme://"),
        (_doc(sha256="abc"), "module.m.sha256", "64 lower-case hex"),
    ],
)
def test_errors_name_file_key_and_reason(text: str, key: str, reason: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, BASE, "bad.toml")
    error = caught.value
    assert (error.path, error.key) == ("bad.toml", key)
    assert reason in error.reason
    assert str(error).startswith(f"bad.toml: {key}: " if key else "bad.toml: ")


def test_duplicate_route_paths() -> None:
    text = _doc() + '\n[[route]]\npath = "/x"\nmodule = "m"'
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, BASE, "dup.toml")
    assert caught.value.key == "route[1].path"
    assert "already route[0]" in caught.value.reason


def test_reserved_names_agree_with_the_host() -> None:
    assert RESERVED_ENV == HOST_RESERVED_ENV


def test_load_checks_sources_and_pins(tmp_path: Path) -> None:
    (tmp_path / "m.wasm").write_bytes(b"\x00asm\x01\x00\x00\x00")
    path = tmp_path / "app.toml"
    path.write_text(_doc())
    manifest = load_manifest(path)
    assert read_module(manifest, manifest.modules["m"]) == b"\x00asm\x01\x00\x00\x00"

    digest = hashlib.sha256(b"\x00asm\x01\x00\x00\x00").hexdigest()
    path.write_text(_doc(sha256=digest))
    assert load_manifest(path).modules["m"].sha256 == digest
    path.write_text(_doc(sha256="f" * 64))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert (caught.value.key, caught.value.path) == ("module.m.sha256", str(path))

    path.write_text(_doc(source="missing.wasm"))
    with pytest.raises(ManifestError) as caught:
        load_manifest(path)
    assert caught.value.key == "module.m.source"
    assert "missing.wasm" in caught.value.reason


def test_unreadable_manifest(tmp_path: Path) -> None:
    with pytest.raises(ManifestError) as caught:
        load_manifest(tmp_path / "nope.toml")
    assert caught.value.path == str(tmp_path / "nope.toml")
    assert "cannot read" in caught.value.reason


_name = st.from_regex(r"[a-z][a-z0-9-]{0,10}", fullmatch=True)
_env = st.dictionaries(
    st.from_regex(r"[A-Z][A-Z0-9_]{0,8}", fullmatch=True),
    st.text(max_size=10).filter(lambda v: "\x00" not in v),
    max_size=3,
).filter(lambda env: not any(k in RESERVED_ENV or k.startswith("HTTP_") for k in env))
_module = st.fixed_dictionaries(
    {
        "source": _name.map(lambda n: f"{n}.wasm"),
        "abi": st.sampled_from(["wagi", "reactor"]),
        "memory_mib": st.integers(1, 256),
        "timeout_ms": st.integers(1, 60_000),
        "env": _env,
    }
)


@given(
    app=_name,
    modules=st.dictionaries(_name, _module, min_size=1, max_size=4),
    segments=st.lists(_name, min_size=4, max_size=6, unique=True),
)
def test_generated_manifests_parse_to_what_they_say(
    app: str, modules: dict[str, dict[str, object]], segments: list[str]
) -> None:
    names = sorted(modules)
    lines = [f'[app]\nname = "{app}"\nversion = "1.0.{len(names)}"']
    for index, segment in enumerate(segments):
        path = f"/{segment}/..." if index % 2 else f"/{segment}"
        lines.append(f'[[route]]\npath = "{path}"\nmodule = "{names[index % len(names)]}"')
    for name, spec in modules.items():
        lines.append(f"[module.{name}]")
        lines.append(f'source = "{spec["source"]}"\nabi = "{spec["abi"]}"')
        lines.append(f'memory = "{spec["memory_mib"]}MiB"\ntimeout = "{spec["timeout_ms"]}ms"')
        lines.append(f"env = {_toml(spec['env'])}")
    manifest = parse_manifest("\n".join(lines), BASE, "gen.toml")
    assert manifest.name == app
    assert len(manifest.routes) == len(segments)
    for name, spec in modules.items():
        parsed = manifest.modules[name]
        assert parsed.source == BASE / str(spec["source"])
        assert parsed.abi == spec["abi"]
        assert parsed.memory_bytes == int(str(spec["memory_mib"])) * 1024**2
        assert abs(parsed.timeout_s - int(str(spec["timeout_ms"])) / 1000) < 1e-9
        assert dict(parsed.env) == spec["env"]
    for index, segment in enumerate(segments):
        route = manifest.match(f"/{segment}")
        assert route is not None
        assert route.module == names[index % len(names)]


@given(st.text(max_size=300))
def test_arbitrary_text_is_a_manifest_or_a_manifest_error(text: str) -> None:
    try:
        parse_manifest(text, BASE, "fuzz.toml")
    except ManifestError as exc:
        path = exc.path
        assert path == "fuzz.toml"


# Spin's manifests call modules components: [component.NAME] and a route's `component`.
SPIN_STYLE = """
[app]
name = "greeter"
version = "1.0.0"
[[route]]
path = "/greeting"
component = "greet"
[[route]]
path = "/hello"
module = "hello"
[component.greet]
source = "greet.wasm"
memory = "32MiB"
[module.hello]
source = "hello.wasm"
"""


def test_a_component_table_is_a_module_whose_abi_defaults_to_wasi_http() -> None:
    manifest = parse_manifest(SPIN_STYLE, BASE, "spin.toml")
    greet, hello = manifest.modules["greet"], manifest.modules["hello"]
    assert (greet.abi, greet.memory_bytes, greet.source) == (
        "wasi-http",
        32 * 1024 * 1024,
        BASE / "greet.wasm",
    )
    assert hello.abi == "wagi"
    assert manifest.module_for(manifest.routes[0]) == greet
    explicit = SPIN_STYLE.replace('source = "greet.wasm"', 'source = "greet.wasm"\nabi = "reactor"')
    assert parse_manifest(explicit, BASE).modules["greet"].abi == "reactor"  # it may say otherwise


def _spin(old: str, new: str) -> str:
    assert old in SPIN_STYLE
    return SPIN_STYLE.replace(old, new)


@pytest.mark.parametrize(
    ("text", "key", "reason"),
    [
        (
            _spin("[module.hello]", "[component.hello]\n[module.hello]"),
            "component.hello",
            "also a [module.hello]",
        ),
        (
            _spin('component = "greet"', 'component = "greet"\nmodule = "greet"'),
            "route[0].component",
            "another name",
        ),
        (_spin('memory = "32MiB"', 'memory = "lots"'), "component.greet.memory", ""),
        (_spin('memory = "32MiB"', 'abi = "spin"'), "module.greet.abi", "'wagi', 'reactor' or 'wasi-http'"),
        (_spin("[component.greet]", "[component.greet]\nroute = '/x'"), "component.greet.route", "unknown"),
        (_spin('component = "greet"', 'component = "nobody"'), "route[0].module", "nobody"),
    ],
)
def test_component_tables_fail_as_clearly_as_modules(text: str, key: str, reason: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(text, BASE, "spin.toml")
    assert caught.value.key == key
    assert reason in caught.value.reason
