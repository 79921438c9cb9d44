"""The node session protocol with real gRPC, the real control plane and real wasm modules."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pytest
import wasmtime

from cpclient import (
    AppliedState,
    ApplyError,
    DirectoryModuleStore,
    MemoryModuleStore,
    ModuleStore,
    NodeIdentity,
    NodeSession,
    SessionSettings,
)
from cpclient.backoff import Backoff
from edge_node.figures import FiguresBook
from protos.edgecdn.v1 import (
    apps_pb2,
    apps_pb2_grpc,
    common_pb2,
    deployments_pb2,
    deployments_pb2_grpc,
    nodes_pb2,
    nodes_pb2_grpc,
)
from tests.control_plane.support import (
    WAT_WAGI,
    LiveControlPlane,
    app_version,
    control_plane_in_process,
    sha,
    upload,
    wasm,
)

T = TypeVar("T")
FAST = Backoff(initial_s=0.05, maximum_s=0.2)
# A WAGI command the control plane accepts and CompilingNode refuses (see there).
WAT_REFUSED = WAT_WAGI[: WAT_WAGI.rindex(")")] + '(func (export "refuse_me")))'


class CompilingNode:
    """A node's apply step: compile every module with wasmtime and require a WAGI ``_start``."""

    def __init__(self) -> None:
        self.engine = wasmtime.Engine()
        self.applied: list[str] = []

    def apply(self, assignment: nodes_pb2.Assignment, modules: Mapping[str, bytes]) -> None:
        for ref in assignment.app.modules:
            module = wasmtime.Module(self.engine, modules[ref.sha256])
            exports = {export.name for export in module.exports}
            # The control plane refuses a module without _start (it links each module as a
            # node would); "refuse_me" stands for a module only a node finds it cannot run.
            if "_start" not in exports or "refuse_me" in exports:
                raise ApplyError(code="abi_mismatch", reason=f"{ref.name} cannot run here", sha256=ref.sha256)
        self.applied.append(assignment.version)


@asynccontextmanager
async def running(session: NodeSession) -> AsyncIterator[NodeSession]:
    task = asyncio.create_task(session.run(), name=f"test-node:{session.identity.node_id}")
    try:
        await session.wait_until(lambda s: s.connected, 10)
        yield session
    finally:
        task.cancel()
        await asyncio.wait([task])


def new_session(
    live: LiveControlPlane,
    node: CompilingNode,
    *,
    node_id: str = "eu-1-a",
    region: str = "eu-1",
    store: ModuleStore | None = None,
    initial: AppliedState | None = None,
) -> NodeSession:
    return NodeSession(
        SessionSettings(target=live.address, token=live.tokens["node"], backoff=FAST),
        NodeIdentity(node_id=node_id, region=region, address=f"http://{node_id}.test"),
        apply=node.apply,
        store=store or MemoryModuleStore(),
        initial=initial,
    )


async def register_and_deploy(
    live: LiveControlPlane, channel: grpc.aio.Channel, wat: str, version: str, **target: object
) -> deployments_pb2.Deployment:
    data = wasm(wat)
    await upload(channel, live.md("operator"), data)
    await apps_pb2_grpc.AppServiceStub(channel).RegisterApp(
        apps_pb2.RegisterAppRequest(app=app_version("geo-hello", version, {"hello": sha(data)})),
        metadata=live.md("operator"),
        timeout=5,
    )
    selector = common_pb2.Selector(**target)  # type: ignore[arg-type]
    return await deployments_pb2_grpc.DeploymentServiceStub(channel).Deploy(
        deployments_pb2.DeployRequest(app_name="geo-hello", app_version=version, target=selector),
        metadata=live.md("operator"),
        timeout=5,
    )


async def watch_until_done(
    live: LiveControlPlane, channel: grpc.aio.Channel, deployment_id: str
) -> deployments_pb2.Deployment:
    stub = deployments_pb2_grpc.DeploymentServiceStub(channel)
    seen = [
        d
        async for d in stub.WatchDeployment(
            deployments_pb2.GetDeploymentRequest(id=deployment_id), metadata=live.md("viewer"), timeout=10
        )
    ]
    return seen[-1]


async def nodes(live: LiveControlPlane, channel: grpc.aio.Channel) -> dict[str, nodes_pb2.NodeInfo]:
    listed = await nodes_pb2_grpc.NodeServiceStub(channel).ListNodes(
        nodes_pb2.ListNodesRequest(), metadata=live.md("viewer"), timeout=5
    )
    return {n.node_id: n for n in listed.nodes}


async def test_assignment_is_fetched_applied_and_acked(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    node = CompilingNode()
    async with running(new_session(live, node)) as session:
        deployment = await register_and_deploy(live, channel, WAT_WAGI, "1.0.0", all=True)
        done = await watch_until_done(live, channel, deployment.id)
        assert done.done
        assert [(p.node_id, p.state) for p in done.nodes] == [
            ("eu-1-a", deployments_pb2.NodeProgress.STATE_ACKED)
        ]
        assert node.applied == [deployment.id]
        assert session.state.version == deployment.id
        assert session.stats.modules_downloaded == 1
        info = (await nodes(live, channel))["eu-1-a"]
        assert (info.status, info.app_name, info.app_version) == (
            nodes_pb2.NODE_STATUS_READY,
            "geo-hello",
            "1.0.0",
        )
        assert info.assignment_version == info.desired_version == deployment.id


async def test_node_nacks_a_module_it_cannot_run_and_keeps_its_version(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    node = CompilingNode()
    async with running(new_session(live, node)) as session:
        good = await register_and_deploy(live, channel, WAT_WAGI, "1.0.0", regions=["eu-1"])
        await watch_until_done(live, channel, good.id)
        bad = await register_and_deploy(live, channel, WAT_REFUSED, "2.0.0", regions=["eu-1"])
        done = await watch_until_done(live, channel, bad.id)
        (progress,) = done.nodes
        assert progress.state == deployments_pb2.NodeProgress.STATE_NACKED
        assert progress.error.code == "abi_mismatch"
        assert "cannot run here" in progress.error.message
        assert session.state.version == good.id
        info = (await nodes(live, channel))["eu-1-a"]
        assert info.assignment_version == good.id
        assert info.desired_version == bad.id
        assert info.app_version == "1.0.0"
        assert info.last_error.code == "abi_mismatch"


async def test_deploy_to_one_region_leaves_the_other_alone(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    eu, us = CompilingNode(), CompilingNode()
    async with (
        running(new_session(live, eu)),
        running(new_session(live, us, node_id="us-1-a", region="us-1")),
    ):
        deployment = await register_and_deploy(live, channel, WAT_WAGI, "1.0.0", regions=["us-1"])
        done = await watch_until_done(live, channel, deployment.id)
        assert [p.node_id for p in done.nodes] == ["us-1-a"]
        assert (eu.applied, us.applied) == ([], [deployment.id])


async def test_reconnect_after_restart_resumes_without_download(tmp_path: Path) -> None:
    node = CompilingNode()
    store = DirectoryModuleStore(tmp_path / "node-modules")
    async with control_plane_in_process(tmp_path / "cp") as live:
        port = int(live.address.rsplit(":", 1)[1])
        session = new_session(live, node, store=store)
        task = asyncio.create_task(session.run(), name="test-node")
        await session.wait_until(lambda s: s.connected, 10)
        async with grpc.aio.insecure_channel(live.address) as channel:
            deployment = await register_and_deploy(live, channel, WAT_WAGI, "1.0.0", all=True)
            await watch_until_done(live, channel, deployment.id)
    await session.wait_until(lambda s: not s.connected, 10)
    try:
        async with control_plane_in_process(tmp_path / "cp", port=port) as live:
            await session.wait_until(lambda s: s.connected and s.stats.connects >= 2, 10)
            async with grpc.aio.insecure_channel(live.address) as channel:
                info = (await nodes(live, channel))["eu-1-a"]
                again = await deployments_pb2_grpc.DeploymentServiceStub(channel).GetDeployment(
                    deployments_pb2.GetDeploymentRequest(id=deployment.id), metadata=live.md("viewer")
                )
        assert info.status == nodes_pb2.NODE_STATUS_READY
        assert info.assignment_version == deployment.id
        assert again.done
        assert session.stats.modules_downloaded == 1
        assert session.stats.assignments == 1
        assert node.applied == [deployment.id]
    finally:
        task.cancel()
        await asyncio.wait([task])


async def test_new_process_with_held_modules_skips_the_download(tmp_path: Path) -> None:
    """A restarted node process (new session object, modules on disk) fetches nothing it holds."""
    store = DirectoryModuleStore(tmp_path / "node-modules")
    async with (
        control_plane_in_process(tmp_path / "cp") as live,
        grpc.aio.insecure_channel(live.address) as channel,
    ):
        first = CompilingNode()
        async with running(new_session(live, first, store=store)) as session:
            deployment = await register_and_deploy(live, channel, WAT_WAGI, "1.0.0", all=True)
            await watch_until_done(live, channel, deployment.id)
            assert session.stats.modules_downloaded == 1
        # The node lost its assignment record but not its module files.
        second = CompilingNode()
        async with running(new_session(live, second, store=store)) as session:
            await session.wait_until(lambda s: s.state.version == deployment.id, 10)
            assert session.stats.modules_downloaded == 0
            assert second.applied == [deployment.id]


async def read(call: grpc.aio.UnaryStreamCall[Any, T] | grpc.aio.StreamStreamCall[Any, T]) -> T:
    message = await call.read()
    assert message is not grpc.aio.EOF
    return message  # type: ignore[return-value]


async def test_silent_node_becomes_unreachable_then_disconnected(
    live: LiveControlPlane, channel: grpc.aio.Channel
) -> None:
    stub = nodes_pb2_grpc.NodeServiceStub(channel)
    watch = stub.WatchNodes(nodes_pb2.WatchNodesRequest(), metadata=live.md("viewer"), timeout=10)
    first = await read(watch)
    assert first.kind == nodes_pb2.NodeEvent.KIND_SNAPSHOT_END
    connect = nodes_pb2_grpc.NodeSessionServiceStub(channel).Connect(metadata=live.md("node"), timeout=10)
    await connect.write(nodes_pb2.NodeMessage(hello=nodes_pb2.NodeHello(node_id="quiet", region="eu-1")))
    params = await read(connect)
    assert params.params.heartbeat_interval_ms == 200
    seen: list[nodes_pb2.NodeStatus.ValueType] = []
    while nodes_pb2.NODE_STATUS_UNREACHABLE not in seen:
        event = await read(watch)
        seen.append(event.node.status)
    assert seen[0] == nodes_pb2.NODE_STATUS_READY
    connect.cancel()
    while seen[-1] != nodes_pb2.NODE_STATUS_DISCONNECTED:
        seen.append((await read(watch)).node.status)
    watch.cancel()


async def test_a_session_silent_for_long_is_ended(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    """A node that stays connected but sends nothing (a half-open connection, or a cancel
    the server never saw: in-process, under load, about one in twelve) is disconnected
    after four times the unreachable threshold, and its stream ends with UNAVAILABLE."""
    stub = nodes_pb2_grpc.NodeServiceStub(channel)
    watch = stub.WatchNodes(nodes_pb2.WatchNodesRequest(), metadata=live.md("viewer"), timeout=10)
    assert (await read(watch)).kind == nodes_pb2.NodeEvent.KIND_SNAPSHOT_END
    connect = nodes_pb2_grpc.NodeSessionServiceStub(channel).Connect(metadata=live.md("node"), timeout=10)
    # Before the hello: the server hears the node last when it takes the hello, after this.
    started = time.monotonic()
    await connect.write(nodes_pb2.NodeMessage(hello=nodes_pb2.NodeHello(node_id="mute", region="eu-1")))
    params = (await read(connect)).params
    seen = [(await read(watch)).node.status]
    while seen[-1] != nodes_pb2.NODE_STATUS_DISCONNECTED:
        seen.append((await read(watch)).node.status)
    elapsed = time.monotonic() - started
    assert seen == [
        nodes_pb2.NODE_STATUS_READY,
        nodes_pb2.NODE_STATUS_UNREACHABLE,
        nodes_pb2.NODE_STATUS_DISCONNECTED,
    ]
    unreachable_after = params.heartbeat_interval_ms / 1000 * params.missed_heartbeats_allowed
    assert elapsed >= 4 * unreachable_after
    with pytest.raises(grpc.aio.AioRpcError) as ended:
        await connect.read()
    assert ended.value.code() == grpc.StatusCode.UNAVAILABLE
    assert "no heartbeat for" in str(ended.value.details())
    watch.cancel()


async def test_session_without_hello_is_refused(live: LiveControlPlane, channel: grpc.aio.Channel) -> None:
    connect = nodes_pb2_grpc.NodeSessionServiceStub(channel).Connect(metadata=live.md("node"), timeout=5)
    await connect.write(nodes_pb2.NodeMessage(heartbeat=nodes_pb2.Heartbeat()))
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await connect.read()
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "hello" in (caught.value.details() or "")


def test_backoff_grows_caps_and_jitters() -> None:
    backoff = Backoff(initial_s=0.1, maximum_s=1.0, multiplier=2.0, jitter=0.5)
    rng = random.Random(7)
    delays = [backoff.delay(n, rng) for n in range(8)]
    assert all(0.05 <= d <= 0.1 for d in delays[:1])
    assert all(0.5 <= d <= 1.0 for d in delays[4:])
    assert len(set(delays)) == len(delays)


def test_directory_store_drops_a_corrupt_file(tmp_path: Path) -> None:
    store = DirectoryModuleStore(tmp_path)
    data = wasm(WAT_WAGI)
    store.put(sha(data), data)
    assert list(store.digests()) == [sha(data)]
    (tmp_path / sha(data)).write_bytes(b"rot")
    with pytest.raises(FileNotFoundError):
        store.get(sha(data))
    assert not store.has(sha(data))


async def test_a_stopping_node_sends_its_last_figures_at_once(tmp_path: Path) -> None:
    book = FiguresBook()
    # Heartbeats every 30 s: only the last one, sent when the node stops, can take them.
    async with control_plane_in_process(tmp_path / "cp", heartbeat_interval_s=30) as live:
        session = NodeSession(
            SessionSettings(target=live.address, token=live.tokens["node"], backoff=FAST),
            NodeIdentity(node_id="eu-1-a", region="eu-1"),
            apply=CompilingNode().apply,
            store=MemoryModuleStore(),
            figures=book,
        )
        stop = asyncio.Event()
        task = asyncio.create_task(session.run(stop), name="test-node:figures")
        await session.wait_until(lambda s: s.connected, 10)
        book.cell("app", "1.0").record(503, 900)
        stop.set()
        await asyncio.wait_for(task, 5)
    assert book.take().figures == [], "the last heartbeat took them"
