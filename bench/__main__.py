"""``make bench``: run every benchmark module of this package, one after another.

Each benchmark is a module with ``main() -> int`` (reading its own flags) that compares EdgeCDN with its peer
side by side and prints ratios. ``python -m bench NAME ...`` runs only those named.
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from collections.abc import Callable
from pathlib import Path

NOT_BENCHMARKS = frozenset({"harness", "plain_server"})


def benchmarks() -> dict[str, Callable[[], int]]:
    found: dict[str, Callable[[], int]] = {}
    for info in sorted(pkgutil.iter_modules([str(Path(__file__).parent)]), key=lambda m: m.name):
        if info.name.startswith("_") or info.name in NOT_BENCHMARKS or info.ispkg:
            continue
        module = importlib.import_module(f"bench.{info.name}")
        entry = getattr(module, "main", None)
        if callable(entry):
            found[info.name] = entry
    return found


def main() -> int:
    available = benchmarks()
    wanted = sys.argv[1:] or list(available)
    unknown = [name for name in wanted if name not in available]
    if unknown:
        have = ", ".join(available)
        print(f"bench: unknown benchmark(s) {', '.join(unknown)}; have: {have}", file=sys.stderr)
        return 2
    failed = []
    for name in wanted:
        print(f"\n=== bench.{name}", flush=True)
        sys.argv = [f"bench.{name}"]  # each benchmark parses its own (default) flags
        if available[name]() != 0:
            failed.append(name)
    if failed:
        print(f"\nbench: below target or failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
