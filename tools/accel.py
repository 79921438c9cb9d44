"""Compile the data plane's hot path in place: mypyc modules and the native WASI library.

    python -m tools.accel build    # compile, unless every compiled module is up to date
                                   # (what `make setup` runs; --force compiles anyway)
    python -m tools.accel clean    # remove the compiled modules: pure Python again
    python -m tools.accel check    # exit 1 when a compiled module is older than its source

Why: the edge node's and router's per-request work is Python (bench/README.md, "Compiled
hot path"). mypyc turns these type-checked modules into C extensions with the same
behaviour, as aiohttp, yarl and multidict ship Cython twins of theirs; measured, a reactor
request costs ~25% less CPU. The sources stay the truth: Python imports an extension
module before the ``.py`` beside it, and when none is built (no C compiler, or
``EDGECDN_NO_EXTENSIONS=1``) the same code runs interpreted. A build that fails leaves no
extension behind and says why; nothing else depends on it.

It also builds ``wasm_host/wasi_cgi.c``, the WASI preview-1 calls of WAGI commands, as a
plain shared library (``NATIVE``); without it WAGI modules run on wasmtime's WASI.

A compiled module shadows its source, so an edited source must be rebuilt: the Makefile
rebuilds when a listed source is newer than the last build, and the test suite refuses to
run against a stale one (``check``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
# Only modules on the per-request path. Not wasm_host._raw: it holds ctypes structures,
# which mypyc does not compile, and code that relies on a frame keeping its locals alive.
MODULES = (
    "httpfront/server.py",
    "httpfront/messages.py",
    "httpfront/flow.py",
    "edge_node/http_adapter.py",
    "edge_node/pipeline.py",
    "edge_node/geo_headers.py",
    "edge_node/app.py",
    "edge_node/exchange.py",
    "edge_node/cache_stage.py",
    "edge_node/cache_flow.py",
    "httpcache/model.py",
    "httpcache/policy.py",
    "httpcache/store.py",
    "edge_node/metrics.py",
    "edge_node/load.py",
    "geo/forwarding.py",
    "geo/lookup.py",
    "runtime/hotmetrics.py",
    "router/upstream.py",  # subclasses httpfront.flow's WriteFlowControl, so compiled with it
    "wasm_host/codec.py",
    "wasm_host/httpfields.py",
    "wasm_host/values.py",
    "wasm_host/executor.py",
    "wasm_host/sandbox.py",
    "wasm_host/reactor.py",
    "wasm_host/wagi.py",
    "wasm_host/cgi.py",
)
# C sources built as shared libraries loaded with ctypes: source -> library.
NATIVE = {"wasm_host/wasi_cgi.c": "wasm_host/_wasi_cgi.so"}
# mypyc's shared runtime for the group; inside a package, so the editable install finds it.
GROUP = "runtime.compiled"
SKIP_ENV = "EDGECDN_NO_EXTENSIONS"


def _suffix() -> str:
    return str(sysconfig.get_config_var("EXT_SUFFIX"))


def _compiled(stem: str) -> Path:
    """The extension module built for ``stem`` (a path in the tree without ``.py``)."""
    return REPO_ROOT / (stem + _suffix())


def _mypyc_files() -> list[Path]:
    """The extension modules mypyc makes, and its shared runtime."""
    stems = [source.removesuffix(".py") for source in MODULES]
    return [_compiled(stem) for stem in [*stems, GROUP.replace(".", "/") + "__mypyc"]]


def built_files() -> list[Path]:
    """Every compiled file ``build`` makes (present or not)."""
    return _mypyc_files() + [REPO_ROOT / library for library in NATIVE.values()]


def _built_from() -> list[tuple[str, Path]]:
    """Each source with what is built from it."""
    pairs = [(source, _compiled(source.removesuffix(".py"))) for source in MODULES]
    return pairs + [(source, REPO_ROOT / library) for source, library in NATIVE.items()]


def stale() -> list[str]:
    """Sources whose compiled module exists but is older than they are."""
    found = []
    for source, compiled in _built_from():
        if compiled.exists() and compiled.stat().st_mtime < (REPO_ROOT / source).stat().st_mtime:
            found.append(source)
    return found


def up_to_date() -> bool:
    """True when every compiled file exists and is newer than every source and this file."""
    try:
        oldest = min(path.stat().st_mtime for path in built_files())
    except FileNotFoundError:
        return False
    sources = [REPO_ROOT / source for source, _ in _built_from()] + [Path(__file__)]
    return all(path.stat().st_mtime <= oldest for path in sources)


def in_use() -> list[str]:
    """The listed modules that this interpreter imported from their compiled form."""
    suffix = _suffix()
    loaded = []
    for source in MODULES:
        name = source.removesuffix(".py").replace("/", ".")
        module = importlib.import_module(name)
        if str(module.__file__).endswith(suffix):
            loaded.append(source)
    return loaded


def clean() -> None:
    """Remove every compiled module in the source tree, listed or not (it may have been
    once); .venv, .edgecdn and build/ are not part of it."""
    suffix = _suffix()
    for top in REPO_ROOT.iterdir():
        if top.is_dir() and not top.name.startswith((".", "build")):
            for path in top.rglob(f"*{suffix}"):
                path.unlink()
    _remove_native()


def _remove_native() -> None:
    for library in NATIVE.values():
        (REPO_ROOT / library).unlink(missing_ok=True)


def build_native() -> None:
    """Build ``NATIVE`` with the C compiler Python was built with (``cc`` as a fallback)."""
    compiler = shlex.split(str(sysconfig.get_config_var("CC") or "cc"))
    for source, library in NATIVE.items():
        target = REPO_ROOT / library
        partial = target.with_suffix(".partial")
        command = [*compiler, "-O2", "-fPIC", "-shared", "-Wall", "-o", str(partial), str(REPO_ROOT / source)]
        try:
            subprocess.run(command, check=True)
            partial.replace(target)  # never a half-written library under the name that is loaded
        finally:
            partial.unlink(missing_ok=True)


def build(*, force: bool = False) -> int:
    """Build ``MODULES`` and ``NATIVE`` in place; return 1 when either failed (and is absent)."""
    if os.environ.get(SKIP_ENV):
        clean()
        print(f"tools.accel: {SKIP_ENV} is set; the hot path runs as pure Python")
        return 0
    if not force and up_to_date():
        return 0
    clean()  # a module no longer listed must not keep shadowing its source
    status = _build_mypyc()
    try:
        build_native()
    except (OSError, subprocess.CalledProcessError) as exc:
        _remove_native()
        print(
            f"tools.accel: building {', '.join(NATIVE)} failed ({exc}); WAGI modules use wasmtime's WASI.",
            file=sys.stderr,
        )
        return 1
    return status


def _build_mypyc() -> int:
    try:
        from mypyc.build import mypycify  # noqa: PLC0415 - a dev dependency, needed only here
        from setuptools import setup  # type: ignore[import-untyped]  # noqa: PLC0415

        os.chdir(REPO_ROOT)
        extensions = mypycify(list(MODULES), opt_level="3", group_name=GROUP)
        setup(
            name="edgecdn-compiled",
            ext_modules=extensions,
            script_args=["--quiet", "build_ext", "--inplace", "--build-temp", "build/accel"],
        )
        for path in _mypyc_files():
            path.touch()  # the in-place copy keeps the times of build/; stamp it as of now
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - any failure means: run interpreted
        clean()
        print(
            f"tools.accel: compiling the hot path failed ({exc!r}; mypyc's reasons above); it "
            "runs as pure Python. Compiling needs a C compiler and the Python headers (python3-dev).",
            file=sys.stderr,
        )
        return 1
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tools.accel", description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("build", "clean", "check"))
    parser.add_argument("--force", action="store_true", help="build even when up to date")
    args = parser.parse_args(argv)
    if args.command == "build":
        return build(force=args.force)
    if args.command == "clean":
        clean()
        return 0
    outdated = stale()
    for source in outdated:
        print(
            f"tools.accel: the compiled {source} is older than its source; run `make setup`", file=sys.stderr
        )
    return 1 if outdated else 0


if __name__ == "__main__":
    sys.exit(main())
