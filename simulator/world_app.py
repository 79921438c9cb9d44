"""Secrets for the local world (its tokens: ``simulator.world_tokens``), and its app put on every
edge node the way an operator would: through the control plane's API (register the manifest,
deploy to all, wait for the nodes).

The world's control plane keeps its state across runs of ``edgecdn up``; the default app is
published and deployed only to a control plane that has no app at all, so a restart of the
world never undoes what an operator deployed since.

Besides its origin's ``/shop/...`` route, the world adds the example apps of
``WORLD_EXAMPLES`` to the app it deploys (their module routes and modules; their own
origin routes stand for the world's shop): ``/weather`` (``handlers/geo-weather``) fetches
from ``/shop/weather`` through the edge cache; ``/greeting`` is the geo greeting as a Spin
SDK component (``handlers/components/geo-greeting``, the ``wasi-http`` ABI) and
``/weather-js`` geo-weather's JavaScript twin, a component calling out the WASI 0.2 way.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import secrets
import time
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

from cpclient import ControlPlaneCallError
from cpclient.operator import OperatorClient, publish_app
from manifest import AppManifest, ManifestError, RouteTable, load_manifest
from manifest.model import Route
from protos.edgecdn.v1 import apps_pb2, common_pb2, nodes_pb2
from runtime.files import write_bytes_atomically
from runtime.signing import SigningKey
from simulator.errors import SimulatorError

MIN_TOKEN_LENGTH = 8
POLL_SECONDS = 0.1
REPO_ROOT = Path(__file__).resolve().parents[1]
WORLD_EXAMPLES = (
    REPO_ROOT / "handlers" / "geo-weather" / "app.toml",
    REPO_ROOT / "handlers" / "components" / "geo-greeting" / "app.toml",
    REPO_ROOT / "handlers" / "components" / "geo-weather-js" / "app.toml",
)


def with_examples(manifest: AppManifest, examples: Sequence[Path]) -> AppManifest:
    """``manifest`` plus each example's module routes and modules, unless a path or module
    name is taken (the app's own wins: an operator's app is never changed underneath)."""
    routes = list(manifest.routes)
    modules = dict(manifest.modules)
    for path in examples:
        try:
            example = load_manifest(path)
        except ManifestError as exc:
            raise SimulatorError(f"world example {path}: {exc}") from exc
        taken = {route.path for route in routes}
        added = [route for route in example.routes if route.module is not None]
        if any(route.path in taken for route in added) or any(name in modules for name in example.modules):
            continue
        routes.extend(added)
        modules.update(example.modules)
    return dataclasses.replace(
        manifest, routes=tuple(routes), modules=modules, table=RouteTable.build(routes)
    )


def ensure_secrets(path: Path, names: Collection[str]) -> dict[str, str]:
    """One random secret per name, kept in ``path`` (a JSON object, mode 0600) across runs;
    made anew when the file is missing, unreadable or lacks one of ``names``."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        if isinstance(data, dict) and all(
            isinstance(data.get(name), str) and len(data[name]) >= MIN_TOKEN_LENGTH for name in names
        ):
            return {name: data[name] for name in names}
    except (OSError, ValueError):
        pass  # none yet, or unusable: make new ones
    secrets_by_name = {name: secrets.token_urlsafe(24) for name in names}
    write_bytes_atomically(path, json.dumps(secrets_by_name, indent=2).encode())
    os.chmod(path, 0o600)
    return secrets_by_name


async def ensure_default_app(
    *,
    control_plane: str,
    operator_token: str,
    manifest_path: Path,
    sign: SigningKey | None = None,
    extra_routes: Sequence[Route] = (),
    examples: Sequence[Path] = WORLD_EXAMPLES,
) -> apps_pb2.AppVersion | None:
    """Publish and deploy the default app to a control plane that has none; None when it has
    apps already (its deployments stand as the operator left them)."""
    try:
        async with OperatorClient(control_plane, operator_token) as client:
            if await client.list_apps():
                return None
    except ControlPlaneCallError as exc:
        raise SimulatorError(f"asking the control plane for its apps: {exc.message}") from exc
    return await publish_and_deploy(
        control_plane=control_plane,
        operator_token=operator_token,
        manifest_path=manifest_path,
        sign=sign,
        extra_routes=extra_routes,
        examples=examples,
    )


async def publish_and_deploy(
    *,
    control_plane: str,
    operator_token: str,
    manifest_path: Path,
    sign: SigningKey | None = None,
    extra_routes: Sequence[Route] = (),
    examples: Sequence[Path] = WORLD_EXAMPLES,
) -> apps_pb2.AppVersion:
    """Register the app of ``manifest_path`` (uploading modules the registry lacks, signed with
    ``sign`` when given) and deploy it to every node, present and future."""
    try:
        manifest = load_manifest(manifest_path)
    except ManifestError as exc:
        raise SimulatorError(f"--app: {exc}") from exc
    # The world's own routes (its origin's /shop/...), checked by the control plane as any.
    manifest = with_examples(manifest, examples)
    manifest = dataclasses.replace(manifest, routes=(*manifest.routes, *extra_routes))
    try:
        async with OperatorClient(control_plane, operator_token) as client:
            app = await publish_app(client, manifest, sign=sign)
            await client.deploy(app.name, app.version, common_pb2.Selector(all=True))
    except ControlPlaneCallError as exc:
        raise SimulatorError(f"deploying {manifest.name}@{manifest.version}: {exc.message}") from exc
    return app


async def wait_until_nodes_serve(
    *,
    control_plane: str,
    viewer_token: str,
    app: apps_pb2.AppVersion | None,
    node_ids: Collection[str],
    timeout_s: float = 60.0,
) -> None:
    """Return once every node in ``node_ids`` runs ``app`` (None: is ready with what it was
    assigned); a NACK or the timeout is an error."""
    deadline = time.monotonic() + timeout_s
    async with OperatorClient(control_plane, viewer_token) as client:
        while True:
            nodes = {node.node_id: node for node in await client.list_nodes() if node.node_id in node_ids}
            if _all_serving(nodes, node_ids, app):
                return
            if app is not None:
                _raise_on_refusal(nodes, app)
            if time.monotonic() > deadline:
                waiting = sorted(set(node_ids) - {n for n, node in nodes.items() if _serves(node, app)})
                what = "were not ready" if app is None else f"did not run {app.name}@{app.version}"
                raise SimulatorError(
                    f"{len(waiting)} edge nodes {what} within {timeout_s:g}s: {', '.join(waiting)}"
                )
            await asyncio.sleep(POLL_SECONDS)


def _serves(node: nodes_pb2.NodeInfo, app: apps_pb2.AppVersion | None) -> bool:
    if app is None:
        return node.status == nodes_pb2.NODE_STATUS_READY
    return node.app_name == app.name and node.app_version == app.version


def _all_serving(
    nodes: Mapping[str, nodes_pb2.NodeInfo], node_ids: Collection[str], app: apps_pb2.AppVersion | None
) -> bool:
    return len(nodes) == len(node_ids) and all(_serves(node, app) for node in nodes.values())


def _raise_on_refusal(nodes: Mapping[str, nodes_pb2.NodeInfo], app: apps_pb2.AppVersion) -> None:
    for node_id, node in sorted(nodes.items()):
        if node.HasField("last_error") and node.last_error.code and not _serves(node, app):
            raise SimulatorError(
                f"edge node {node_id} refused {app.name}@{app.version}: "
                f"{node.last_error.code}: {node.last_error.message}"
            )
