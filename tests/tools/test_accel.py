"""The compiled hot path: built by `make setup` wherever it can be, never stale, and optional."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tools import accel
from wasm_host.wasi_cgi import load_native_wasi


def _can_compile() -> bool:
    headers = Path(sysconfig.get_paths()["include"]) / "Python.h"
    return shutil.which("cc") is not None and headers.exists()


@pytest.mark.skipif(bool(os.environ.get(accel.SKIP_ENV)), reason=f"{accel.SKIP_ENV} is set")
@pytest.mark.skipif(not _can_compile(), reason="no C compiler or Python headers: pure Python runs")
def test_every_listed_module_runs_compiled_where_a_compiler_exists() -> None:
    # A module mypyc stopped compiling would silently fall back to Python, and lose its speed.
    assert accel.in_use() == list(accel.MODULES)
    assert accel.up_to_date()
    # And the native WASI library: WAGI commands would quietly fall back to wasmtime's WASI.
    assert load_native_wasi() is not None


def test_an_edited_source_is_reported_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "hot.py"
    source.write_text("x = 1\n")
    compiled = tmp_path / ("hot" + str(sysconfig.get_config_var("EXT_SUFFIX")))
    compiled.write_bytes(b"")
    monkeypatch.setattr(accel, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(accel, "MODULES", ("hot.py",))
    os.utime(source, (1_000, 1_000))
    assert accel.stale() == []
    os.utime(compiled, (500, 500))
    assert accel.stale() == ["hot.py"]


def test_an_edited_native_source_is_reported_stale(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "lib.c").write_text("int x;\n")
    (tmp_path / "lib.so").write_bytes(b"")
    monkeypatch.setattr(accel, "REPO_ROOT", tmp_path)
    monkeypatch.setattr(accel, "MODULES", ())
    monkeypatch.setattr(accel, "NATIVE", {"lib.c": "lib.so"})
    os.utime(tmp_path / "lib.c", (1_000, 1_000))
    assert accel.stale() == []
    os.utime(tmp_path / "lib.so", (500, 500))
    assert accel.stale() == ["lib.c"]


def test_the_pure_python_hot_path_is_the_same_code(tmp_path: Path) -> None:
    # A checkout with nothing compiled (no C compiler): the sources import and serve as they are.
    for package in {source.split("/")[0] for source in accel.MODULES} | {"manifest", "protos"}:
        shutil.copytree(accel.REPO_ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("*.so"))
    code = (
        "import httpfront.server, edge_node.http_adapter;"
        "from wasm_host.codec import decode_response, encode_response;"
        "from wasm_host.values import WasmResponse;"
        "r = WasmResponse(status=201, headers=(('a', 'b'),), body=b'x');"
        "assert decode_response(encode_response(r)) == r;"
        "assert httpfront.server.__file__.endswith('.py'), httpfront.server.__file__;"
        f"assert edge_node.http_adapter.__file__.startswith({str(tmp_path)!r})"
    )
    subprocess.run([sys.executable, "-c", code], cwd=tmp_path, check=True)
