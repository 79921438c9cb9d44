"""A restart of the real control-plane process (same --data-dir) loses nothing."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import grpc

from cpclient import MemoryModuleStore, NodeIdentity, NodeSession, SessionSettings, auth_metadata
from cpclient.backoff import Backoff
from protos.edgecdn.v1 import (
    apps_pb2,
    apps_pb2_grpc,
    common_pb2,
    deployments_pb2,
    deployments_pb2_grpc,
    modules_pb2,
    modules_pb2_grpc,
    nodes_pb2,
    nodes_pb2_grpc,
)
from simulator.supervisor import ChildSpec, Supervisor
from tests.control_plane.support import WAT_WAGI, app_version, padded_wasm, sha, upload, wasm


def spec(data_dir: Path) -> ChildSpec:
    return ChildSpec(
        name="control-plane",
        argv=(sys.executable, "-m", "control_plane", "--port", "0", "--data-dir", str(data_dir)),
    )


async def test_state_survives_a_restart(tmp_path: Path) -> None:
    data_dir = tmp_path / "cp"
    modules = [wasm(WAT_WAGI), padded_wasm(50_000)]
    async with Supervisor(tmp_path / "run1") as supervisor:
        child = await supervisor.start(spec(data_dir))
        tokens = json.loads((data_dir / "tokens.json").read_text())
        operator = auth_metadata(tokens["operator"])
        address = child.report.addresses["grpc"]
        async with grpc.aio.insecure_channel(address) as channel:
            for data in modules:
                await upload(channel, operator, data)
            await apps_pb2_grpc.AppServiceStub(channel).RegisterApp(
                apps_pb2.RegisterAppRequest(
                    app=app_version("shop", "1.0", {"a": sha(modules[0]), "b": sha(modules[1])})
                ),
                metadata=operator,
            )
            session = NodeSession(
                SessionSettings(target=address, token=tokens["node"], backoff=Backoff(initial_s=0.05)),
                NodeIdentity(node_id="eu-1-a", region="eu-1"),
                apply=lambda assignment, blobs: None,
                store=MemoryModuleStore(),
            )
            task = asyncio.create_task(session.run(), name="node")
            await session.wait_until(lambda s: s.connected, 10)
            deployment = await deployments_pb2_grpc.DeploymentServiceStub(channel).Deploy(
                deployments_pb2.DeployRequest(
                    app_name="shop", app_version="1.0", target=common_pb2.Selector(all=True)
                ),
                metadata=operator,
            )
            watched = [
                d
                async for d in deployments_pb2_grpc.DeploymentServiceStub(channel).WatchDeployment(
                    deployments_pb2.GetDeploymentRequest(id=deployment.id), metadata=operator, timeout=10
                )
            ]
            assert watched[-1].done
            task.cancel()
            await asyncio.wait([task])
        await supervisor.stop_all(timeout_s=5)

    async with Supervisor(tmp_path / "run2") as supervisor:
        child = await supervisor.start(spec(data_dir))
        assert json.loads((data_dir / "tokens.json").read_text()) == tokens
        viewer = auth_metadata(tokens["viewer"])
        async with grpc.aio.insecure_channel(child.report.addresses["grpc"]) as channel:
            listed = await modules_pb2_grpc.ModuleServiceStub(channel).ListModules(
                modules_pb2.ListModulesRequest(), metadata=viewer
            )
            assert sorted(m.sha256 for m in listed.modules) == sorted(sha(m) for m in modules)
            chunks = modules_pb2_grpc.ModuleServiceStub(channel).DownloadModule(
                modules_pb2.DownloadModuleRequest(sha256=sha(modules[1])),
                metadata=auth_metadata(tokens["node"]),
            )
            assert b"".join([c.data async for c in chunks]) == modules[1]
            app = await apps_pb2_grpc.AppServiceStub(channel).GetApp(
                apps_pb2.GetAppRequest(name="shop"), metadata=viewer
            )
            assert app.version == "1.0"
            again = await deployments_pb2_grpc.DeploymentServiceStub(channel).GetDeployment(
                deployments_pb2.GetDeploymentRequest(id=deployment.id), metadata=viewer
            )
            assert again.done
            assert again.nodes[0].state == deployments_pb2.NodeProgress.STATE_ACKED
            nodes = await nodes_pb2_grpc.NodeServiceStub(channel).ListNodes(
                nodes_pb2.ListNodesRequest(), metadata=viewer
            )
            (node,) = nodes.nodes
            assert (node.node_id, node.status) == ("eu-1-a", nodes_pb2.NODE_STATUS_DISCONNECTED)
            assert (node.assignment_version, node.app_version) == (deployment.id, "1.0")
