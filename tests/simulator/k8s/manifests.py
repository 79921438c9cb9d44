"""Helpers the Kubernetes tests share: the default rendering and ways to walk its documents."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from geo.world import World, load_world
from simulator.k8s.cmd import companion_files
from simulator.k8s.options import RenderOptions
from simulator.k8s.render import Manifest, render

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULT_WORLD = Path("deploy/local/world.toml")
COMMITTED = REPO_ROOT / "deploy" / "k8s"
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob", "ReplicaSet"}

Doc = dict[str, Any]


def default_world() -> tuple[World, str]:
    path = REPO_ROOT / DEFAULT_WORLD
    return load_world(path), path.read_text(encoding="utf-8")


def rendered(options: RenderOptions | None = None) -> list[Manifest]:
    """The default world's rendering, with the files it names (as ``edgecdn k8s render``)."""
    world, text = default_world()
    return render(world, text, options or RenderOptions(), companion_files(world))


def documents(manifests: list[Manifest]) -> list[Doc]:
    return [document for manifest in manifests for document in manifest.documents]


def pod_specs(docs: list[Doc]) -> Iterator[tuple[str, Doc]]:
    """(workload name, pod spec) of every workload: no pod is made any other way."""
    for doc in docs:
        if doc["kind"] in WORKLOAD_KINDS:
            yield doc["metadata"]["name"], doc["spec"]["template"]["spec"]


def of_kind(docs: list[Doc], kind: str) -> list[Doc]:
    return [doc for doc in docs if doc["kind"] == kind]
