"""Removing app versions (RemoveApp, ``edgectl apps rm``) and collecting the modules they
leave unused: refused while deployed or in a rollout, the blob gone from disk and database."""

from __future__ import annotations

from pathlib import Path

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration
from hypothesis import given
from hypothesis import strategies as st

from control_plane.app_usage import DeploymentView, NodeView, listing, version_users
from control_plane.blobs import BlobStore
from control_plane.compile_check import ModuleValidator
from control_plane.db import Database
from control_plane.modules import ModuleRegistry
from protos.edgecdn.v1 import (
    apps_pb2,
    apps_pb2_grpc,
    common_pb2,
    deployments_pb2,
    deployments_pb2_grpc,
    modules_pb2,
    modules_pb2_grpc,
    rollouts_pb2,
    rollouts_pb2_grpc,
)
from tests.control_plane.rollouts.support import started
from tests.control_plane.support import (
    WAT_WAGI,
    LiveControlPlane,
    app_version,
    control_plane_in_process,
    padded_wasm,
    sha,
    upload,
    wasm,
)

SHARED = wasm(WAT_WAGI)
ONLY_V1 = padded_wasm(2_000, marker=7)


async def _remove(
    channel: grpc.aio.Channel, live: LiveControlPlane, name: str, version: str
) -> apps_pb2.RemoveAppResponse:
    return await apps_pb2_grpc.AppServiceStub(channel).RemoveApp(
        apps_pb2.RemoveAppRequest(name=name, version=version), metadata=live.md("operator"), timeout=10
    )


async def _register(channel: grpc.aio.Channel, live: LiveControlPlane, app: apps_pb2.AppVersion) -> None:
    await apps_pb2_grpc.AppServiceStub(channel).RegisterApp(
        apps_pb2.RegisterAppRequest(app=app), metadata=live.md("operator"), timeout=10
    )


async def _digests(channel: grpc.aio.Channel, live: LiveControlPlane) -> set[str]:
    listed = await modules_pb2_grpc.ModuleServiceStub(channel).ListModules(
        modules_pb2.ListModulesRequest(), metadata=live.md("viewer")
    )
    return {m.sha256 for m in listed.modules}


async def _two_versions(channel: grpc.aio.Channel, live: LiveControlPlane) -> None:
    for data in (SHARED, ONLY_V1):
        await upload(channel, live.md("operator"), data)
    await _register(channel, live, app_version("shop", "1.0", {"a": sha(SHARED), "b": sha(ONLY_V1)}))
    await _register(channel, live, app_version("shop", "1.1", {"a": sha(SHARED)}))


async def test_remove_a_version_and_collect_what_only_it_used(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    await _two_versions(channel, live)
    blob = live.data_dir / "modules" / sha(ONLY_V1)[:2] / sha(ONLY_V1)
    assert blob.is_file()
    removed = await _remove(channel, live, "shop", "1.0")
    assert list(removed.removed_modules) == [sha(ONLY_V1)]
    assert not blob.exists(), "the blob is removed from disk"
    assert await _digests(channel, live) == {sha(SHARED)}, "and from the database"
    listed = await apps_pb2_grpc.AppServiceStub(channel).ListApps(
        apps_pb2.ListAppsRequest(), metadata=live.md("viewer")
    )
    assert [(a.name, list(a.versions)) for a in listed.apps] == [("shop", ["1.1"])]

    removed = await _remove(channel, live, "shop", "1.1")
    assert list(removed.removed_modules) == [sha(SHARED)]
    assert await _digests(channel, live) == set()
    # Nothing is left behind that stops the same content from coming back.
    await upload(channel, live.md("operator"), ONLY_V1)
    await _register(channel, live, app_version("shop", "1.0", {"b": sha(ONLY_V1)}))


async def test_unknown_version_and_missing_version(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    await _two_versions(channel, live)
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _remove(channel, live, "shop", "9.9")
    assert caught.value.code() == grpc.StatusCode.NOT_FOUND
    assert caught.value.details() == "app shop@9.9 not found"
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _remove(channel, live, "shop", "")
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await apps_pb2_grpc.AppServiceStub(channel).RemoveApp(
            apps_pb2.RemoveAppRequest(name="shop", version="1.0"), metadata=live.md("viewer")
        )
    assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED


async def _deploy(channel: grpc.aio.Channel, live: LiveControlPlane, version: str) -> None:
    await deployments_pb2_grpc.DeploymentServiceStub(channel).Deploy(
        deployments_pb2.DeployRequest(
            app_name="shop",
            app_version=version,
            target=common_pb2.Selector(regions=["eu-1"]),
            allow_empty=True,
        ),
        metadata=live.md("operator"),
        timeout=10,
    )


async def test_refused_while_deployed_then_removable_and_a_restart_reads_the_history(tmp_path: Path) -> None:
    async with (
        control_plane_in_process(tmp_path / "cp") as live,
        grpc.aio.insecure_channel(live.address) as channel,
    ):
        await _two_versions(channel, live)
        await _deploy(channel, live, "1.0")
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await _remove(channel, live, "shop", "1.0")
        assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
        details = caught.value.details() or ""
        assert details.startswith("app shop@1.0 is in use: deployment(s) 1 still in force"), details
        assert "Deploy another version there" in details
        assert await _digests(channel, live) == {sha(SHARED), sha(ONLY_V1)}, "nothing was removed"
        await _deploy(channel, live, "1.1")  # supersedes deployment 1 in eu-1
        removed = await _remove(channel, live, "shop", "1.0")
        assert list(removed.removed_modules) == [sha(ONLY_V1)]
    # The old deployment record names a version that is gone: the control plane still starts.
    async with (
        control_plane_in_process(tmp_path / "cp") as live,
        grpc.aio.insecure_channel(live.address) as channel,
    ):
        got = await deployments_pb2_grpc.DeploymentServiceStub(channel).GetDeployment(
            deployments_pb2.GetDeploymentRequest(id="2"), metadata=live.md("viewer")
        )
        assert got.app_version == "1.1"


async def test_refused_while_part_of_a_rollout(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    await _two_versions(channel, live)
    spec = rollouts_pb2.RolloutSpec(
        app_name="shop",
        app_version="1.1",
        waves=[rollouts_pb2.Wave(regions=["eu-1"], bake_time=Duration(seconds=600))],
        allow_empty=True,
    )
    rollout = await rollouts_pb2_grpc.RolloutServiceStub(channel).StartRollout(
        rollouts_pb2.StartRolloutRequest(spec=spec), metadata=live.md("operator"), timeout=10
    )
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await _remove(channel, live, "shop", "1.1")
    assert caught.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"rollout {rollout.id} (" in (caught.value.details() or "")
    assert "rolls it out" in (caught.value.details() or "")


def test_what_keeps_a_version_in_use() -> None:
    def view(id_: int, version: str, **selector: object) -> DeploymentView:
        return DeploymentView(
            id=id_,
            app_name="geo-hello",
            app_version=version,
            selector=common_pb2.Selector(**selector),  # type: ignore[arg-type]
        )

    node = NodeView(
        node_id="eu-1-a", region="eu-1", app_name="geo-hello", app_version="1.0.0", connected=True
    )
    away = NodeView(
        node_id="eu-1-b", region="eu-1", app_name="geo-hello", app_version="0.9.0", connected=False
    )
    assert version_users("geo-hello", "1.0.0", nodes=[], deployments=[], rollouts=[]) == []
    assert version_users("geo-hello", "1.0.0", nodes=[node], deployments=[], rollouts=[]) == [
        "running on 1 node(s) (eu-1-a)"
    ]
    assert version_users("geo-hello", "0.9.0", nodes=[away], deployments=[], rollouts=[]) == []
    # A region deployment is in force until a later one covers the region (or everything).
    first, later = view(1, "1.0.0", regions=["eu-1", "us-1"]), view(2, "1.1.0", regions=["eu-1"])
    assert version_users("geo-hello", "1.0.0", nodes=[], deployments=[first, later], rollouts=[]) == [
        "deployment(s) 1 still in force"
    ]
    everything = view(3, "1.1.0", all=True)
    assert version_users("geo-hello", "1.0.0", nodes=[], deployments=[first, everything], rollouts=[]) == []
    # A node's own deployment, and one for a node id no one has seen yet.
    pinned = view(4, "1.0.0", node_ids=["eu-1-a", "ghost"])
    assert version_users("geo-hello", "1.0.0", nodes=[], deployments=[pinned], rollouts=[]) == [
        "deployment(s) 4 still in force"
    ]
    # A rollout that has not ended: its version, and what it may roll back to.
    rollout = started().rollout  # geo-hello 1.1.0 over regions running 1.0.0 and 0.9.0
    assert version_users("geo-hello", "1.1.0", nodes=[], deployments=[], rollouts=[rollout]) == [
        "rollout r-3 (deploying) rolls it out"
    ]
    assert version_users("geo-hello", "0.9.0", nodes=[], deployments=[], rollouts=[rollout]) == [
        "rollout r-3 (deploying) would roll back to it"
    ]
    assert version_users("other", "1.1.0", nodes=[], deployments=[], rollouts=[rollout]) == []


async def test_collection_keeps_a_module_an_upload_stored_again(tmp_path: Path) -> None:
    """An upload of the same digest that lands between the row's and the blob's removal
    keeps its module whole: the blob is dropped only while the row is still gone."""
    db = Database(tmp_path / "db.sqlite3")
    with ModuleValidator() as validator:
        modules = ModuleRegistry(db, BlobStore(tmp_path / "modules"), validator)
        data = wasm(WAT_WAGI)
        await modules.add(name="m", sha256=sha(data), abi=1, data=data)
        with db.transaction() as conn:
            assert modules.collect(conn, [sha(data)]) == (sha(data),)
        await modules.add(name="m", sha256=sha(data), abi=1, data=data)  # the racing upload
        modules.drop_blobs([sha(data)])
        assert modules.read(sha(data)) == data
        with db.transaction() as conn:
            assert modules.collect(conn, [sha(data)]) == (sha(data),)
        modules.drop_blobs([sha(data)])
        assert not modules.has(sha(data))
        assert not (tmp_path / "modules" / sha(data)[:2] / sha(data)).exists()
    db.close()


def test_a_long_list_of_users_says_how_many_it_leaves_out() -> None:
    nodes = [
        NodeView(node_id=f"n{i}", region="eu-1", app_name="geo-hello", app_version="1.0.0", connected=True)
        for i in range(8)
    ]
    assert version_users("geo-hello", "1.0.0", nodes=nodes, deployments=[], rollouts=[]) == [
        "running on 8 node(s) (n0, n1, n2, n3, n4 and 3 more)"
    ]
    deployments = [
        DeploymentView(
            id=i, app_name="geo-hello", app_version="1.0.0", selector=common_pb2.Selector(node_ids=[f"x{i}"])
        )
        for i in range(1, 8)
    ]
    assert version_users("geo-hello", "1.0.0", nodes=[], deployments=deployments, rollouts=[]) == [
        "deployment(s) 1, 2, 3, 4, 5 and 2 more still in force"
    ]


@given(st.lists(st.text("abc", min_size=1, max_size=5), max_size=12))
def test_a_listing_names_or_counts_every_item(items: list[str]) -> None:
    text = listing(items)
    shown = min(len(items), 5)
    assert text.startswith(", ".join(items[:shown]))
    assert text.endswith(f" and {len(items) - 5} more") == (len(items) > 5)
