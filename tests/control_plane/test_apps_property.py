"""Property: the control plane accepts exactly the app versions that edgectl's parser accepts
and the edge node's own loader can build.

Hypothesis draws app versions near the edge of every rule (names, versions, paths with NUL,
duplicate routes, unused and unknown modules, reserved environment names, ABIs, limits past
their bounds, link-local and metadata origins) and sends each one through the raw
``RegisterApp`` API of a live control plane. The same version, written out as a TOML
manifest, goes through ``manifest.load_manifest`` (what ``edgectl apps register`` runs), and
through the node's loader (``cpclient.apps.manifest_from_app_version`` and
``edge_node.app.build_app``, what an edge node runs on an assignment). Accepted means the
parser accepts it and the node builds it; refused means one of them would not.
"""

from __future__ import annotations

import asyncio
import itertools
import tempfile
import threading
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import TypeVar

import grpc
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from control_plane.apps import app_problem
from cpclient import ApplyError
from cpclient.apps import manifest_from_app_version
from edge_node.app import build_app
from edge_node.errors import ConfigLoadError
from edge_node.metrics import AppFigures
from manifest import ManifestError, load_manifest
from protos.edgecdn.v1 import apps_pb2, apps_pb2_grpc, modules_pb2, modules_pb2_grpc
from tests.control_plane.support import WAT_WAGI, LiveControlPlane, control_plane_in_process, sha, wasm
from tests.control_plane.test_apps_rules import REACTOR
from wasm_host.component_cache import ComponentCache
from wasm_host.config import EngineConfig
from wasm_host.engine import WasmEngine

WAGI = wasm(WAT_WAGI)
BLOBS = {sha(WAGI): WAGI, sha(REACTOR): REACTOR}
MiB = 1024 * 1024
_names = itertools.count()
T = TypeVar("T")


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[LiveControlPlane, grpc.Channel]]:
    """A control plane on its own thread and event loop, and a blocking channel to it."""
    started: list[LiveControlPlane] = []
    ready, stop = threading.Event(), threading.Event()

    async def serve(folder: Path) -> None:
        async with control_plane_in_process(folder / "cp") as live:
            started.append(live)
            ready.set()
            await asyncio.to_thread(stop.wait)

    with tempfile.TemporaryDirectory(prefix="edgecdn-prop-") as folder:
        thread = threading.Thread(target=asyncio.run, args=(serve(Path(folder)),), daemon=True)
        thread.start()
        assert ready.wait(30), "the control plane did not start"
        live = started[0]
        with grpc.insecure_channel(live.address) as channel:
            modules = modules_pb2_grpc.ModuleServiceStub(channel)
            for data in BLOBS.values():
                header = modules_pb2.ModuleUploadHeader(name="m", sha256=sha(data), size_bytes=len(data))
                parts = [
                    modules_pb2.UploadModuleRequest(header=header),
                    modules_pb2.UploadModuleRequest(chunk=data),
                ]
                modules.UploadModule(iter(parts), metadata=live.md("operator"), timeout=20)
            yield live, channel
        stop.set()
        thread.join(30)


def _often(valid: T, *others: T) -> st.SearchStrategy[T]:
    """``valid`` about 11 times in 12 (so that a fair share of whole versions is valid), else
    one of ``others``."""
    return st.sampled_from([valid] * (11 * len(others)) + list(others))


@st.composite
def module_refs(draw: st.DrawFn, name: str) -> apps_pb2.ModuleRef:
    kind = draw(st.sampled_from(["wagi", "reactor"]))
    digest = draw(_often(sha(WAGI) if kind == "wagi" else sha(REACTOR), "0" * 64, "XYZ"))
    right, wrong = (1, 2) if kind == "wagi" else (2, 1)
    # A module linked under the other ABI is the one fault only a node's loader sees.
    abi = draw(st.sampled_from([right] * 6 + [wrong, wrong, 0, 7]))
    ref = apps_pb2.ModuleRef(
        name=name,
        sha256=str(digest),
        abi=int(str(abi)),  # type: ignore[arg-type]
        memory_bytes=int(str(draw(_often(MiB, 0, 64 * 1024, 256 * MiB, 256 * MiB + 1, 2**63, 1000)))),
        max_output_bytes=int(str(draw(_often(0, 1, 64 * MiB, 64 * MiB + 1)))),
    )
    timeout = draw(_often(100_000_000, None, 60_000_000_000, 60_000_000_001, 3_600_000_000_000, 0, -1))
    if timeout is not None:
        ref.timeout.FromNanoseconds(int(str(timeout)))
    env: dict[str, str] = draw(
        _often(
            {},
            {"GREETING": "hi"},
            {"HTTP_CF_IPCOUNTRY": "US"},
            {"PATH_INFO": "/"},
            {"1BAD": "x"},
            {"MODE": "a\x00b"},
            {"LANG": "ü"},
        )
    )
    ref.env.update(env)
    hosts: list[str] = draw(
        _often([], ["https://db.example.com"], ["*://*.example.com:*"], ["db.example.com"])
    )
    ref.allowed_outbound_hosts.extend(hosts)
    return ref


PATHS = [
    "/",
    "/hello",
    "/api/...",
    "/a/b",
    "x",
    "/a\x00b",
    "/a b",
    "/a/.../b",
    "/q?x",
    "/a\x7f",
    "/" + "p" * 1100,
]
ORIGINS = [
    "http://127.0.0.1:9000",
    "https://origin.example.com",
    "http://169.254.169.254/",
    "http://[fe80::1]/",
    "http://metadata.google.internal/",
    "http://2852039166/",
    "http://[::ffff:169.254.169.254]/",
    "ftp://x",
    "http://",
    "http://example.com:99999/",
]


@st.composite
def app_versions(draw: st.DrawFn) -> apps_pb2.AppVersion:
    names = draw(st.lists(st.sampled_from(["api", "web", "img"]), max_size=3, unique=True))
    odd = draw(_often(None, "api", "bad name", "m" * 65))  # a repeated or impossible name
    names += [str(odd)] if odd is not None and (odd != "api" or names) else []
    modules = [draw(module_refs(str(name))) for name in names]
    app = apps_pb2.AppVersion(
        name=f"{draw(_often('shop', 'a.b', 'Shop_1', 'bad name', '', '-x', 'x' * 64))}-{next(_names)}",
        version=str(draw(_often("1.0", "1.0.0+build.5", "2", "1.0 beta", "", "v" * 129))),
        modules=modules,
    )
    for name in dict.fromkeys(names):  # a route for each module, as a manifest would have
        if draw(_often(True, False)):
            app.routes.add(path=str(draw(_often(f"/{name}", *PATHS))), module=str(name))
    for index in range(draw(st.integers(0 if app.routes else 1, 2))):
        path = str(draw(_often(f"/more/{index}/...", *PATHS)))
        target = draw(_often("module", "origin", "origin", "none", "ghost"))
        if target == "module" and names:
            app.routes.add(path=path, module=str(draw(st.sampled_from(names))))
        elif target in ("origin", "module"):
            app.routes.add(path=path, origin=str(draw(st.sampled_from(ORIGINS))))
        elif target == "ghost":
            app.routes.add(path=path, module="ghost")
        else:
            app.routes.add(path=path)
    return app


def _q(text: str) -> str:
    """A TOML basic string."""
    escaped = "".join(
        f"\\u{ord(c):04x}" if ord(c) < 0x20 or ord(c) == 0x7F or c in '"\\' else c for c in text
    )
    return f'"{escaped}"'


def as_manifest(app: apps_pb2.AppVersion) -> str:
    """The manifest an operator would write for ``app`` (sources named by digest)."""
    lines = ["[app]", f"name = {_q(app.name)}", f"version = {_q(app.version)}"]
    for route in app.routes:
        lines.append("[[route]]")
        lines.append(f"path = {_q(route.path)}")
        target = route.WhichOneof("target")
        if target is not None:
            lines.append(f"{target} = {_q(getattr(route, target))}")
    for ref in app.modules:
        lines += [
            f"[module.{_q(ref.name)}]",
            f"source = {_q(ref.sha256 + '.wasm')}",
            f"sha256 = {_q(ref.sha256)}",
        ]
        if ref.abi:
            lines.append(f"abi = {_q({1: 'wagi', 2: 'reactor'}.get(ref.abi, f'abi-{ref.abi}'))}")
        if ref.memory_bytes:
            lines.append(f"memory = {ref.memory_bytes}")
        if ref.HasField("timeout"):
            seconds = Decimal(ref.timeout.ToNanoseconds()).scaleb(-9)
            lines.append(f'timeout = "{seconds:f}s"')
        if ref.max_output_bytes:
            lines.append(f"max_output = {ref.max_output_bytes}")
        env = ", ".join(f"{_q(k)} = {_q(v)}" for k, v in sorted(ref.env.items()))
        lines.append(f"env = {{ {env} }}")
        lines.append(f"allowed_outbound_hosts = [{', '.join(_q(h) for h in ref.allowed_outbound_hosts)}]")
    return "\n".join(lines) + "\n"


def parser_accepts(app: apps_pb2.AppVersion, folder: Path) -> bool:
    path = folder / "app.toml"
    path.write_text(as_manifest(app), encoding="utf-8")
    try:
        load_manifest(path)
    except ManifestError:
        return False
    return True


@pytest.fixture(scope="module")
def node_cache() -> Iterator[ComponentCache]:
    """The engine an edge node runs with by default, and its module cache."""
    with WasmEngine(EngineConfig()) as engine:
        yield ComponentCache(engine)


def node_builds(app: apps_pb2.AppVersion, cache: ComponentCache) -> bool:
    try:
        manifest = manifest_from_app_version(app)
        sources = {name: BLOBS[spec.sha256 or ""] for name, spec in manifest.modules.items()}
        build_app(manifest, sources, engine=cache.engine, cache=cache, figures=AppFigures)
    except (ApplyError, ConfigLoadError, KeyError):
        return False
    return True


def register(
    stub: apps_pb2_grpc.AppServiceStub, live: LiveControlPlane, app: apps_pb2.AppVersion
) -> tuple[grpc.StatusCode, str]:
    try:
        stub.RegisterApp(apps_pb2.RegisterAppRequest(app=app), metadata=live.md("operator"), timeout=20)
    except grpc.RpcError as exc:
        return exc.code(), str(exc.details())
    return grpc.StatusCode.OK, ""


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(app=app_versions())
def test_what_the_control_plane_accepts_nodes_deploy_and_what_it_refuses_edgectl_refuses(
    served: tuple[LiveControlPlane, grpc.Channel], node_cache: ComponentCache, app: apps_pb2.AppVersion
) -> None:
    live, channel = served
    stub = apps_pb2_grpc.AppServiceStub(channel)
    code, why = register(stub, live, app)
    assert code in (grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT), why
    accepted = code == grpc.StatusCode.OK
    event("accepted" if accepted else f"refused at {why.split(':')[0]}")
    with tempfile.TemporaryDirectory() as folder:
        for digest, data in BLOBS.items():
            (Path(folder) / f"{digest}.wasm").write_bytes(data)
        parsed = parser_accepts(app, Path(folder))
    if accepted:
        assert parsed, f"edgectl's parser refuses what the control plane stored:\n{as_manifest(app)}"
        assert node_builds(app, node_cache), "a node cannot build what the control plane stored"
    else:
        taken = parsed and node_builds(app, node_cache)
        assert not taken, f"refused ({why}) though edgectl and the nodes take it"
        # The pure check agrees with the server where it can tell (no registry, no linking).
        problem = app_problem(app)
        if problem is not None:
            assert why.startswith(f"{problem[0]}: {problem[1]}"), why


def test_a_plain_app_passes_all_three(
    served: tuple[LiveControlPlane, grpc.Channel], node_cache: ComponentCache
) -> None:
    """A plain valid app is accepted (so the property above is not vacuous)."""
    live, channel = served
    app = apps_pb2.AppVersion(name=f"plain-{next(_names)}", version="1.0")
    app.modules.add(name="api", sha256=sha(WAGI), abi=1)
    app.modules.add(name="fast", sha256=sha(REACTOR), abi=2)
    app.routes.add(path="/api/...", module="api")
    app.routes.add(path="/fast", module="fast")
    app.routes.add(path="/...", origin="http://127.0.0.1:9000")
    apps_pb2_grpc.AppServiceStub(channel).RegisterApp(
        apps_pb2.RegisterAppRequest(app=app), metadata=live.md("operator"), timeout=20
    )
    with tempfile.TemporaryDirectory() as folder:
        for digest, data in BLOBS.items():
            (Path(folder) / f"{digest}.wasm").write_bytes(data)
        assert parser_accepts(app, Path(folder))
    assert node_builds(app, node_cache)
