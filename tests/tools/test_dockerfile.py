"""The Dockerfile, linted (no image can be built here): what it copies exists and is in the
build context, it copies every installed package, compiles the native parts in a builder
stage, and runs every process as a non-root user of a compiler-free runtime stage."""

from __future__ import annotations

import fnmatch
import re
import shlex
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from simulator.iot_layout import SENSOR_STATS
from simulator.k8s.options import RenderOptions
from tests.simulator.k8s.manifests import documents, pod_specs, rendered
from tools import accel

REPO_ROOT = Path(__file__).resolve().parents[2]
# The processes the issue names, and the CLI that renders manifests: one image runs them all.
PROCESSES = {"edge-node", "edge-router", "control-plane", "iot-gateway", "edgectl", "mqtt-broker", "edgecdn"}
COMPILERS = ("gcc", "g++", "clang", "build-essential", "python3-dev", "libc6-dev", "make")


@dataclass
class Stage:
    name: str
    base: str
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [text for kind, text in self.instructions if kind == keyword]


def parse_dockerfile(text: str) -> list[Stage]:
    """Stages with their instructions; continuation lines joined, comments dropped."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not pending and (not line or line.startswith("#")):
            continue
        if line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    assert not pending, "the Dockerfile ends inside a continued line"
    stages: list[Stage] = []
    for line in logical:
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            words = rest.split()
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else str(len(stages))
            stages.append(Stage(name=name, base=words[0]))
        elif keyword != "ARG" or stages:
            stages[-1].instructions.append((keyword, rest.strip()))
    return stages


def dockerignore() -> list[str]:
    lines = (REPO_ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.startswith("#")]
    assert not any(p.startswith("!") for p in patterns), "this lint does not model exceptions"
    return patterns


def ignored(path: str, patterns: list[str]) -> bool:
    """Whether Docker leaves ``path`` out of the context (the pattern or a parent matches)."""
    parts = path.strip("/").split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for raw in patterns:
        pattern = raw.strip("/")
        for candidate in candidates:
            if fnmatch.fnmatch(candidate, pattern):
                return True
            if pattern.startswith("**/") and any(
                fnmatch.fnmatch("/".join(candidate.split("/")[i:]), pattern[3:])
                for i in range(len(candidate.split("/")))
            ):
                return True
    return False


STAGES = parse_dockerfile((REPO_ROOT / "Dockerfile").read_text(encoding="utf-8"))
BUILDER, RUNTIME = STAGES[0], STAGES[-1]


def copies(stage: Stage) -> list[tuple[list[str], str, bool]]:
    """(sources, destination, from another stage) of every COPY."""
    found = []
    for text in stage.all("COPY"):
        words = shlex.split(text)
        from_stage = any(word.startswith("--from=") for word in words)
        paths = [word for word in words if not word.startswith("--")]
        found.append((paths[:-1], paths[-1], from_stage))
    return found


def copied_from_context() -> set[str]:
    return {
        source.rstrip("/")
        for stage in STAGES
        for sources, _, other in copies(stage)
        if not other
        for source in sources
    }


def test_two_stages_a_builder_and_a_runtime() -> None:
    assert len(STAGES) == 2
    assert BUILDER.name == "builder"
    # The runtime stage takes only the builder's results, nothing from the context.
    assert all(other for _sources, _dest, other in copies(RUNTIME))


def test_every_copy_source_exists_and_is_in_the_build_context() -> None:
    patterns = dockerignore()
    sources = copied_from_context()
    assert sources
    for source in sources:
        assert (REPO_ROOT / source).exists(), f"COPY {source}: no such file in the repository"
        assert not ignored(source, patterns), f"COPY {source}: .dockerignore leaves it out of the context"


def test_every_installed_package_and_what_the_processes_read_is_copied() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = {
        path.parent.name
        for path in REPO_ROOT.glob("*/__init__.py")
        if any(fnmatch.fnmatch(path.parent.name, pattern) for pattern in patterns)
    }
    sources = copied_from_context()
    assert packages - sources == set(), "the Dockerfile does not COPY these packages"
    assert {"pyproject.toml", "README.md", "tools", "handlers", "deploy/local"} <= sources
    ignore = dockerignore()
    # The gateways' initial module, the default world, and what tools.accel compiles.
    needed = [SENSOR_STATS.as_posix(), "deploy/local/world.toml", *accel.MODULES, *accel.NATIVE]
    for path in needed:
        assert (REPO_ROOT / path).exists(), path
        assert not ignored(path, ignore), f"{path} is left out of the build context"
        assert any(path == s or path.startswith(s + "/") for s in sources), f"{path} is not copied"


def test_the_builder_compiles_the_native_parts_and_the_runtime_has_no_compiler() -> None:
    builder_runs = " ".join(BUILDER.all("RUN"))
    assert "tools.accel build" in builder_runs
    assert "tools.accel check" in builder_runs
    assert "pip uninstall --yes mypy" in builder_runs
    runtime_runs = " ".join(RUNTIME.all("RUN"))
    installed = re.findall(r"apt-get install ([^&|;]*)", runtime_runs)
    packages = {word for group in installed for word in group.split() if not word.startswith("-")}
    assert packages & set(COMPILERS) == set(), f"the runtime stage installs a compiler: {packages}"
    assert "mosquitto" in packages  # what `mqtt-broker --engine mosquitto` runs


def test_the_runtime_runs_as_a_numeric_non_root_user() -> None:
    (user,) = RUNTIME.all("USER")
    uid = user.split(":")[0]
    assert uid.isdigit(), "a numeric uid lets Kubernetes check runAsNonRoot"
    assert int(uid) != 0
    kinds = [kind for kind, _text in RUNTIME.instructions]
    assert kinds.index("USER") > max(i for i, kind in enumerate(kinds) if kind in {"RUN", "COPY"})
    # The pods run as the image's user (simulator/k8s/pods.py).
    for _name, spec in pod_specs(documents(rendered(RenderOptions()))):
        assert spec["securityContext"]["runAsUser"] == int(uid)


def test_no_healthcheck_kubernetes_probes_instead() -> None:
    assert all(not stage.all("HEALTHCHECK") for stage in STAGES)


def test_every_process_is_a_console_script_the_image_checks() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    scripts = set(config["project"]["scripts"])
    (loop,) = [text for text in RUNTIME.all("RUN") if text.startswith("for script in")]
    checked = set(loop.removeprefix("for script in").split(";")[0].split())
    assert checked == PROCESSES
    assert checked <= scripts, f"not console scripts of the distribution: {checked - scripts}"
    rendered_commands = {
        spec["containers"][0]["command"][0] for _name, spec in pod_specs(documents(rendered(RenderOptions())))
    }
    assert rendered_commands <= checked
    (cmd,) = RUNTIME.all("CMD")
    default = re.match(r'^\["([a-z-]+)"', cmd)
    assert default is not None, "CMD must be in exec form"
    assert default.group(1) in scripts


def test_the_context_leaves_out_the_developers_machine() -> None:
    patterns = dockerignore()
    for path in (
        ".git",
        ".venv",
        ".edgecdn",
        "edge_node/pipeline.cpython-311-x86_64-linux-gnu.so",
        "geo/__pycache__",
    ):
        assert ignored(path, patterns), path
