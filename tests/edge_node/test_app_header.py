"""Every answer of a node that serves an app names the app version that answered it
(``x-edge-app: NAME@VERSION``): handler answers, the node's own error answers, and none
while the node has no app. The swap of versions under a control plane is in test_figures."""

from __future__ import annotations

import aiohttp
import pytest

from geo.world import World
from simulator.supervisor import RunningChild
from tests.edge_node.conftest import client_from, node_url

APP = "edge-test@1.2.3"


@pytest.mark.parametrize(
    ("path", "status"),
    [
        ("/m/env", 200),  # a WAGI handler's answer
        ("/prefix/a/b", 200),
        ("/nowhere", 404),  # no route
        ("/m/trap", 500),  # handler trap
        ("/m/loop", 504),  # deadline
        ("/m/garbage", 502),  # invalid handler output
    ],
)
async def test_every_answer_names_the_app_version(
    edge_node: RunningChild, world: World, path: str, status: int
) -> None:
    async with client_from(world, "KR") as client, client.get(node_url(edge_node) + path) as response:
        assert response.status == status
        assert response.headers.getall("x-edge-app") == [APP]


async def test_answers_refused_before_routing_name_it_too(edge_node: RunningChild, world: World) -> None:
    async with client_from(world, "US") as client:
        headers = {f"x-filler-{i}": "v" * 1000 for i in range(20)}
        async with client.get(f"{node_url(edge_node)}/m/env", headers=headers) as response:
            assert response.status == 431
            assert response.headers["x-edge-app"] == APP
        async with client.post(f"{node_url(edge_node)}/m/env", data=b"x" * 70_000) as response:
            assert response.status == 413
            assert response.headers["x-edge-app"] == APP


async def test_a_handler_cannot_claim_another_version(edge_node: RunningChild, world: World) -> None:
    async with client_from(world, "KR") as client, client.get(f"{node_url(edge_node)}/m/claims") as response:
        assert response.headers.getall("x-edge-app") == [APP]
        assert response.headers["x-handler"] == "kept"


async def test_admin_answers_do_not_and_metrics_count_per_version(edge_node: RunningChild) -> None:
    async with aiohttp.ClientSession() as client:
        async with client.get(f"{node_url(edge_node)}/healthz") as response:
            assert "x-edge-app" not in response.headers
        async with client.get(f"{node_url(edge_node)}/metrics") as response:
            metrics = await response.text()
    assert 'edge_app_requests_total{app="edge-test",version="1.2.3"}' in metrics
    assert 'edge_app_server_errors_total{app="edge-test",version="1.2.3"}' in metrics
