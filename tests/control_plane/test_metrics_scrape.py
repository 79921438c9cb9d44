"""``/metrics`` of a real control plane: scraped over HTTP while nodes hold sessions, a
deploy is ACKed and RPCs succeed and are refused; bad metrics flags fail clearly."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiohttp
import grpc
import pytest
from prometheus_client.parser import text_string_to_metric_families

from control_plane.config import ControlPlaneConfig
from control_plane.exclusive import ListenError
from control_plane.server import run
from cpclient import MemoryModuleStore, NodeIdentity, NodeSession, SessionSettings, auth_metadata
from cpclient.backoff import Backoff
from cpclient.operator import OperatorClient
from protos.edgecdn.v1 import common_pb2, nodes_pb2, nodes_pb2_grpc
from tests.control_plane.support import WAT_WAGI, app_version, wasm

FAST = Backoff(initial_s=0.05, maximum_s=0.2)
LIST_NODES = "/edgecdn.v1.NodeService/ListNodes"
CONNECT = "/edgecdn.v1.NodeSessionService/Connect"
Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@asynccontextmanager
async def scraped_control_plane(data_dir: Path) -> AsyncIterator[tuple[str, str, dict[str, str]]]:
    """A control plane in this loop with ``--metrics-port 0``: (gRPC address, /metrics URL, tokens)."""
    config = ControlPlaneConfig(
        data_dir=data_dir, grace_seconds=0.5, heartbeat_interval_s=0.1, metrics_port=0
    )
    ready: asyncio.Future[dict[str, str]] = asyncio.get_running_loop().create_future()
    stop = asyncio.Event()
    task = asyncio.create_task(run(config, ready=lambda found: ready.set_result(dict(found)), stop=stop))
    try:
        waiters: list[asyncio.Future[Any]] = [ready, task]
        done, _ = await asyncio.wait(waiters, timeout=20, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
        addresses = ready.result()
        tokens = json.loads((data_dir / "tokens.json").read_text())
        yield addresses["grpc"], addresses["metrics"], tokens
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)


async def scrape(url: str) -> Samples:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        assert response.status == 200
        assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
        text = await response.text()
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


async def scrape_until(url: str, holds: Callable[[Samples], bool], timeout_s: float = 10) -> Samples:
    """Scrape until ``holds`` (a condition, not a fixed wait); fail after ``timeout_s``."""
    async with asyncio.timeout(timeout_s):
        while True:
            found = await scrape(url)
            if holds(found):
                return found
            await asyncio.sleep(0.05)


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def test_metrics_follow_sessions_deployments_and_rpcs(tmp_path: Path) -> None:
    async with (
        scraped_control_plane(tmp_path / "cp") as (address, url, tokens),
        grpc.aio.insecure_channel(address) as channel,
    ):
        stub = nodes_pb2_grpc.NodeServiceStub(channel)
        await stub.ListNodes(nodes_pb2.ListNodesRequest(), metadata=auth_metadata(tokens["viewer"]))
        with pytest.raises(grpc.aio.AioRpcError):
            await stub.ListNodes(nodes_pb2.ListNodesRequest())  # no token
        sessions = [
            NodeSession(
                SessionSettings(target=address, token=tokens["node"], backoff=FAST),
                NodeIdentity(node_id=node_id, region=region),
                apply=lambda assignment, modules: None,
                store=MemoryModuleStore(),
                channel=channel,
            )
            for node_id, region in (("eu-1-a", "eu-1"), ("eu-1-b", "eu-1"), ("us-1-a", "us-1"))
        ]
        tasks = [asyncio.create_task(session.run()) for session in sessions]
        try:
            await asyncio.gather(*(s.wait_until(lambda s: s.connected, 20) for s in sessions))
            found = await scrape_until(
                url, lambda f: value(f, "control_plane_node_messages_total", kind="heartbeat") >= 3
            )
            assert value(found, "control_plane_node_sessions", region="eu-1") == 2
            assert value(found, "control_plane_node_sessions", region="us-1") == 1
            assert value(found, "control_plane_nodes", region="eu-1", status="ready") == 2
            assert value(found, "control_plane_rpcs_total", method=LIST_NODES, code="OK") == 1
            assert value(found, "control_plane_rpcs_total", method=LIST_NODES, code="UNAUTHENTICATED") == 1
            assert value(found, "control_plane_rpc_duration_seconds_count", method=LIST_NODES) == 2
            # Open streams count as started at once; they finish later.
            assert value(found, "control_plane_rpcs_started_total", method=CONNECT) == 3

            await deploy_to_all(address, tokens["operator"])
            # An ACK is counted as it arrives; the deployment's progress moves when its group
            # commit lands, up to a few ms later (control_plane/group_commit.py): wait for both.
            found = await scrape_until(
                url,
                lambda f: (
                    value(f, "control_plane_node_messages_total", kind="ack") == 3
                    and value(f, "control_plane_deployments_unfinished") == 0
                ),
            )
            assert value(found, "control_plane_deployments") == 1
            uploads = "/edgecdn.v1.ModuleService/UploadModule"
            assert value(found, "control_plane_rpcs_total", method=uploads, code="OK") == 1
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
        # A session stops counting as open when it closes; its node turns disconnected and
        # its RPC is counted as finished a loop turn or two later, when its handler has ended.
        found = await scrape_until(
            url,
            lambda f: (
                value(f, "control_plane_node_sessions", region="eu-1") == 0 and connects_finished(f) == 3
            ),
        )
        assert value(found, "control_plane_nodes", region="eu-1", status="disconnected") == 2


def connects_finished(found: Samples) -> float:
    return sum(
        v
        for (name, labels), v in found.items()
        if name == "control_plane_rpcs_total" and ("method", CONNECT) in labels
    )


async def deploy_to_all(address: str, token: str) -> None:
    async with OperatorClient(address, token) as client:
        info = await client.push_module(
            wasm(WAT_WAGI), name="m", abi=common_pb2.ABI_WAGI, progress=lambda _: None
        )
        await client.register_app(app_version("app", "1.0", {"main": info.sha256}))
        deployment = await client.deploy("app", "1.0", common_pb2.Selector(all=True))
        async for _ in client.watch_deployment(deployment.id, 20):
            pass


async def test_without_a_metrics_port_there_is_no_endpoint(tmp_path: Path) -> None:
    config = ControlPlaneConfig(data_dir=tmp_path / "cp", grace_seconds=0.5)
    reported: list[dict[str, Any]] = []
    stop = asyncio.Event()

    def ready(addresses: Any) -> None:
        reported.append(dict(addresses))
        stop.set()

    await asyncio.wait_for(run(config, ready=ready, stop=stop), 20)
    assert list(reported[0]) == ["grpc"]


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (["--metrics-port", "70000"], "--metrics-port: 70000 is not a TCP port (0..65535)"),
        (["--metrics-host", "127.0.0.1"], "--metrics-host: needs --metrics-port"),
        (["--metrics-port", "x"], "invalid int value"),
    ],
)
async def test_bad_metrics_flags_fail_with_a_clear_message(flags: list[str], message: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "control_plane", *flags, stderr=asyncio.subprocess.PIPE
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 20)
    assert process.returncode == 2
    assert message in stderr.decode()
    assert "Traceback" not in stderr.decode()


async def test_a_taken_metrics_port_is_refused_by_name(tmp_path: Path) -> None:
    holder = await asyncio.start_server(lambda r, w: None, "127.0.0.1", 0)
    port = holder.sockets[0].getsockname()[1]
    try:
        config = ControlPlaneConfig(data_dir=tmp_path / "cp", grace_seconds=0.5, metrics_port=port)
        with pytest.raises(ListenError, match=rf"cannot listen on 127.0.0.1:{port}: --metrics-port"):
            await asyncio.wait_for(run(config, stop=asyncio.Event()), 20)
    finally:
        holder.close()
        await holder.wait_closed()
