"""GatewayService over gRPC with a real broker: ListGateways, SendGatewayCommand and
StreamGatewayCommand, the status codes of refusals, and the scale of 1,000 gateways."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from protos.edgecdn.v1 import common_pb2, gateways_pb2, gateways_pb2_grpc
from tests.control_plane.gateways.peers import Fake, Peers, until
from tests.control_plane.support import WAT_WAGI, LiveControlPlane, control_plane_in_process, upload, wasm
from tests.mqtt_brokers import BrokerUnderTest

Request = gateways_pb2.GatewayCommandRequest
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture
async def live(tmp_path: Path, mosquitto_broker: BrokerUnderTest) -> AsyncIterator[LiveControlPlane]:
    async with control_plane_in_process(tmp_path / "cp", mqtt=mosquitto_broker.link()) as running:
        yield running


@pytest.fixture
async def stub(live: LiveControlPlane) -> AsyncIterator[gateways_pb2_grpc.GatewayServiceAsyncStub]:
    async with grpc.aio.insecure_channel(live.address) as channel:
        yield gateways_pb2_grpc.GatewayServiceStub(channel)


async def _listed(stub: gateways_pb2_grpc.GatewayServiceAsyncStub, live: LiveControlPlane) -> list[str]:
    response = await stub.ListGateways(
        gateways_pb2.ListGatewaysRequest(), metadata=live.md("viewer"), timeout=5
    )
    return [g.gateway_id for g in response.gateways]


async def _code(
    stub: gateways_pb2_grpc.GatewayServiceAsyncStub, live: LiveControlPlane, request: Request
) -> str:
    with pytest.raises(grpc.aio.AioRpcError) as caught:
        await stub.SendGatewayCommand(request, metadata=live.md("operator"), timeout=10)
    return f"{caught.value.code().name}: {caught.value.details()}"


async def test_commands_over_grpc(
    live: LiveControlPlane, stub: gateways_pb2_grpc.GatewayServiceAsyncStub, mosquitto_broker: BrokerUnderTest
) -> None:
    async with grpc.aio.insecure_channel(live.address) as channel:
        module = await upload(channel, live.md("operator"), wasm(WAT_WAGI), name="sensor-stats")
    gateway = Fake(gateway_id="gw-1", region="eu-west-1", labels={"site": "a"})
    async with Peers(mosquitto_broker.link("gateway"), [gateway]) as peer:
        await until(lambda: _has(stub, live, "gw-1"))
        update = Request(
            target=common_pb2.Selector(all=True),
            update_module=gateways_pb2.UpdateModule(sha256=module.sha256),
        )
        response = await stub.SendGatewayCommand(update, metadata=live.md("operator"), timeout=20)
        assert (list(response.gateway_ids), [r.ok for r in response.results]) == (["gw-1"], [True])
        assert response.results[0].status["gateway_id"] == "gw-1"
        assert peer.seen.commands[-1][1] == {"kind": "update_module"}

        ping = Request(labels={"site": "a"}, ping=gateways_pb2.Ping())
        # The caller's trace continues through the control plane to the gateway: one trace.
        metadata = (*live.md("operator"), ("traceparent", f"00-{TRACE_ID}-{'1' * 16}-01"))
        steps = [p async for p in stub.StreamGatewayCommand(ping, metadata=metadata, timeout=20)]
        assert peer.seen.commands[-1][2].split("-")[1] == TRACE_ID
        assert [p.WhichOneof("event") for p in steps] == ["started", "result"]
        assert steps[1].result.gateway_id == "gw-1"

        assert await _code(
            stub, live, Request(target=common_pb2.Selector(node_ids=["nope"]), ping=gateways_pb2.Ping())
        ) == ("NOT_FOUND: unknown gateway id: nope")
        unknown = Request(
            target=common_pb2.Selector(all=True), update_module=gateways_pb2.UpdateModule(sha256="cd" * 32)
        )
        assert (await _code(stub, live, unknown)).startswith("FAILED_PRECONDITION: module cdcd")
        slow = Request(
            target=common_pb2.Selector(all=True), set_sample_interval=gateways_pb2.SetSampleInterval()
        )
        slow.set_sample_interval.interval.FromSeconds(7200)
        assert (await _code(stub, live, slow)).startswith("INVALID_ARGUMENT: set_sample_interval.interval")
        assert (await _code(stub, live, Request(target=common_pb2.Selector(all=True)))).startswith(
            "INVALID_ARGUMENT"
        )
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.SendGatewayCommand(ping, metadata=live.md("viewer"), timeout=5)
        assert caught.value.code() == grpc.StatusCode.PERMISSION_DENIED

        await peer.publish_raw("edgecdn/v1/eu-west-1/gw-1/status", b"{broken")
        await until(lambda: _refused(stub, live))


async def _has(
    stub: gateways_pb2_grpc.GatewayServiceAsyncStub, live: LiveControlPlane, gateway_id: str
) -> bool:
    return gateway_id in await _listed(stub, live)


async def _refused(stub: gateways_pb2_grpc.GatewayServiceAsyncStub, live: LiveControlPlane) -> bool:
    response = await stub.ListGateways(
        gateways_pb2.ListGatewaysRequest(), metadata=live.md("viewer"), timeout=5
    )
    return dict(response.refused_by_reason) == {"status: not UTF-8 JSON": 1} and response.broker_connected


async def test_a_thousand_gateways(
    live: LiveControlPlane, stub: gateways_pb2_grpc.GatewayServiceAsyncStub, mosquitto_broker: BrokerUnderTest
) -> None:
    fleet = [Fake(gateway_id=f"gw-{i:04d}", region=f"region-{i % 10}") for i in range(1000)]
    async with Peers(mosquitto_broker.link("gateway"), fleet, name="fleet") as peers:
        await until(lambda: _all_listed(stub, live), timeout_s=30)
        ping = Request(target=common_pb2.Selector(all=True), ping=gateways_pb2.Ping())
        ping.deadline.FromSeconds(10)
        response = await stub.SendGatewayCommand(ping, metadata=live.md("operator"), timeout=30)
        # Every result within the 10 s deadline: none timed out.
        assert len(response.results) == 1000
        assert all(r.ok and not r.timed_out for r in response.results)
        assert len(peers.seen.commands) == 1000


async def _all_listed(stub: gateways_pb2_grpc.GatewayServiceAsyncStub, live: LiveControlPlane) -> bool:
    return len(await _listed(stub, live)) == 1000
