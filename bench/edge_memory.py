"""Resident memory of an edge node serving an app of 20 modules (issue 4: < 150 MB RSS).

The 20 modules are the real geo-hello handler, each made distinct by a custom section
(a wasm section every engine ignores), so all 20 are compiled, cached and linked
separately, exactly as 20 different handlers would be. Every route is exercised before
measuring, so instance pools and caches are warm. The peer is the same process serving
one module: the difference is the cost of 19 more.

    .venv/bin/python -m bench.edge_memory [--modules 20]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path

import aiohttp

from bench.harness import REPO_ROOT, rss_bytes
from simulator.supervisor import ChildSpec, RunningChild, Supervisor

WORLD = REPO_ROOT / "deploy" / "local" / "world.toml"
GEO_HELLO = REPO_ROOT / "handlers" / "geo-hello" / "geo_hello.wasm"
MiB = 1024 * 1024
TARGET_BYTES = 150 * MiB


def with_custom_section(wasm: bytes, name: str) -> bytes:
    """``wasm`` plus a custom section called ``name`` (id 0, LEB128 sizes)."""
    encoded = name.encode()
    payload = _leb128(len(encoded)) + encoded
    return wasm + b"\x00" + _leb128(len(payload)) + payload


def _leb128(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def write_app(directory: Path, modules: int) -> Path:
    directory.mkdir(parents=True)
    wasm = GEO_HELLO.read_bytes()
    lines = ['[app]\nname = "many-modules"\nversion = "1"\n']
    for index in range(modules):
        (directory / f"m{index}.wasm").write_bytes(with_custom_section(wasm, f"variant-{index}"))
        lines.append(f'[[route]]\npath = "/m{index}"\nmodule = "m{index}"\n')
        lines.append(f'[module.m{index}]\nsource = "m{index}.wasm"\n')
    manifest = directory / "app.toml"
    manifest.write_text("\n".join(lines))
    return manifest


async def serve_and_measure(supervisor: Supervisor, name: str, app: Path, data: Path, modules: int) -> int:
    node: RunningChild = await supervisor.start(
        ChildSpec(
            name=name,
            argv=(
                sys.executable, "-m", "edge_node", "--workers", "1", "--app", str(app),
                "--region", "eu-central-1",
                "--world", str(WORLD), "--data-dir", str(data), "--log-level", "warning",
            ),
        )
    )  # fmt: skip
    url = node.report.addresses["http"]
    async with aiohttp.ClientSession() as client:
        for _ in range(20):
            for index in range(modules):
                async with client.get(f"{url}/m{index}") as response:
                    await response.read()
                    if response.status != 200:
                        raise RuntimeError(f"/m{index} answered {response.status}")
    return rss_bytes(node.pid)


async def measure(modules: int) -> tuple[int, int]:
    with tempfile.TemporaryDirectory(prefix="edgecdn-bench-") as tmp_name:
        tmp = Path(tmp_name)
        async with Supervisor(tmp / "run") as supervisor:
            one = await serve_and_measure(supervisor, "one", write_app(tmp / "one", 1), tmp / "d1", 1)
            many = await serve_and_measure(
                supervisor, "many", write_app(tmp / "many", modules), tmp / "dn", modules
            )
    return one, many


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.edge_memory", description=__doc__)
    parser.add_argument("--modules", type=int, default=20)
    args = parser.parse_args(argv)
    one, many = asyncio.run(measure(args.modules))
    print(f"edge node RSS, 1 module:   {one / MiB:7.1f} MiB")
    target = f"(target < {TARGET_BYTES / MiB:.0f} MiB)"
    print(f"edge node RSS, {args.modules} modules: {many / MiB:7.1f} MiB {target}")
    print(f"per extra module:          {(many - one) / max(1, args.modules - 1) / MiB:7.2f} MiB")
    return 0 if many < TARGET_BYTES else 1


if __name__ == "__main__":
    sys.exit(main())
