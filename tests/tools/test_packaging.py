"""Every Python package of the tree is installed: processes run from any directory (a package
missing from pyproject's list imports only from the repository root, and fails elsewhere)."""

from __future__ import annotations

import fnmatch
import tomllib
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
NOT_SHIPPED = {"tests", "tools", "bench", "handlers", "deploy", "docs", "build"}


def test_every_top_level_package_is_in_pyproject() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        path.parent.name
        for path in REPO_ROOT.glob("*/__init__.py")
        if path.parent.name not in NOT_SHIPPED and not path.parent.name.startswith(".")
    }
    missing = sorted(p for p in packages if not any(fnmatch.fnmatch(p, pattern) for pattern in patterns))
    assert missing == [], f"add to [tool.setuptools.packages.find] include: {missing}"
