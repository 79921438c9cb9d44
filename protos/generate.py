"""Regenerate the Python code for the wire API from ``protos/edgecdn/v1/*.proto``.

Run from the repository root (``make protos``). The ``.proto`` files import each other by
their repository path (``protos/edgecdn/v1/common.proto``), so the generated modules
import each other as ``protos.edgecdn.v1.common_pb2``: folder path = Python package path.
Typed stubs (``.pyi``) come from mypy-protobuf. ``generate(out_dir)`` is also what the
drift test calls, into a temporary directory, to compare with what is committed.
"""

from __future__ import annotations

import shutil
import sys
import sysconfig
from importlib import resources
from pathlib import Path

from grpc_tools import protoc

REPO_ROOT = Path(__file__).resolve().parent.parent
PROTO_DIR = Path("protos/edgecdn/v1")
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


class GenerationError(Exception):
    """protoc failed; the message is what it printed."""


def proto_sources() -> list[Path]:
    """The .proto files, relative to the repository root, in a stable order."""
    return sorted(path.relative_to(REPO_ROOT) for path in (REPO_ROOT / PROTO_DIR).glob("*.proto"))


def generated_files(root: Path) -> list[Path]:
    """Generated files under ``root``'s copy of the proto folder, relative to ``root``."""
    folder = root / PROTO_DIR
    return sorted(
        path.relative_to(root) for path in folder.iterdir() if path.name.endswith(GENERATED_SUFFIXES)
    )


def _plugin(name: str) -> str:
    scripts = Path(sysconfig.get_path("scripts"))
    found = shutil.which(name, path=str(scripts)) or shutil.which(name)
    if found is None:
        raise GenerationError(f"{name} not found; install the dev extra (make setup)")
    return found


def generate(out_dir: Path) -> list[Path]:
    """Generate code for every .proto into ``out_dir`` (mirroring the source folders)."""
    well_known = resources.files("grpc_tools") / "_proto"
    args = [
        "grpc_tools.protoc",
        f"-I{REPO_ROOT}",
        f"-I{well_known}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--mypy_out=quiet:{out_dir}",
        f"--mypy_grpc_out=quiet:{out_dir}",
        *(str(REPO_ROOT / source) for source in proto_sources()),
    ]
    (out_dir / PROTO_DIR).mkdir(parents=True, exist_ok=True)
    if protoc.main(args) != 0:
        raise GenerationError("protoc failed (see the messages above)")
    return generated_files(out_dir)


def main() -> int:
    for stale in generated_files(REPO_ROOT):
        (REPO_ROOT / stale).unlink()
    try:
        written = generate(REPO_ROOT)
    except GenerationError as exc:
        print(f"protos: {exc}", file=sys.stderr)
        return 1
    print(f"protos: generated {len(written)} files from {len(proto_sources())} .proto sources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
