"""The world's layout: which flags each process gets, and how a restart pins its ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from geo.world import load_world
from runtime.ready import ReadyReport
from simulator.layout import (
    control_plane_link,
    control_plane_spec,
    edge_node_plans,
    fault_relay_spec,
    node_regions,
    port_of,
    router_spec,
    with_flag,
)
from tests.conftest import REPO_ROOT

WORLD = load_world(REPO_ROOT / "deploy" / "local" / "world.toml")


def report(**addresses: str) -> ReadyReport:
    return ReadyReport(service="x", pid=1, addresses=addresses)


@pytest.mark.parametrize(
    ("address", "port"), [("127.0.0.1:4242", 4242), ("http://127.0.0.1:8080", 8080), ("[::1]:99", 99)]
)
def test_port_of_reads_host_port_and_urls(address: str, port: int) -> None:
    assert port_of(address) == port


def test_with_flag_replaces_only_that_flag_value() -> None:
    assert with_flag(("a", "--port", "0", "--x", "0"), "--port", "7") == ("a", "--port", "7", "--x", "0")


def test_the_control_plane_restarts_on_its_port(tmp_path: Path) -> None:
    spec = control_plane_spec(data_dir=tmp_path, tokens_file=tmp_path / "t.json")
    assert spec.pin is not None
    pinned = list(spec.pin(spec.argv, report(grpc="127.0.0.1:40123")))
    assert pinned[pinned.index("--port") + 1] == "40123"
    assert pinned[pinned.index("--data-dir") + 1] == str(tmp_path)


def test_the_control_plane_serves_metrics_and_restarts_on_that_port_too(tmp_path: Path) -> None:
    spec = control_plane_spec(data_dir=tmp_path, tokens_file=tmp_path / "t.json")
    assert spec.pin is not None
    assert spec.argv[list(spec.argv).index("--metrics-port") + 1] == "0"
    pinned = list(
        spec.pin(spec.argv, report(grpc="127.0.0.1:40123", metrics="http://127.0.0.1:40124/metrics"))
    )
    assert pinned[pinned.index("--port") + 1] == "40123"
    assert pinned[pinned.index("--metrics-port") + 1] == "40124"


def test_nodes_dial_their_regions_relay_link_and_restart_on_their_port(tmp_path: Path) -> None:
    links = {region.id: f"127.0.0.1:{5000 + i}" for i, region in enumerate(WORLD.regions)}
    plans = edge_node_plans(
        WORLD,
        control_plane=links,
        node_tokens={node_id: f"t-{node_id}" for node_id in node_regions(WORLD)},
        state_dir=tmp_path,
        geo_cache_dir=tmp_path,
    )
    assert len(plans) == sum(region.edge_nodes for region in WORLD.regions)
    for plan in plans:
        argv = list(plan.spec.argv)
        assert argv[argv.index("--control-plane") + 1] == links[plan.region]
        assert argv[argv.index("--reconnect-max") + 1] == "1s"
        assert plan.spec.env["EDGE_NODE_TOKEN"] == f"t-{plan.node_id}"  # each node its own token
        assert plan.spec.pin is not None
        pinned = list(plan.spec.pin(plan.spec.argv, report(http="http://127.0.0.1:6001")))
        assert pinned[pinned.index("--port") + 1] == "6001"


def test_the_relay_has_a_link_per_region_and_pins_every_port(tmp_path: Path) -> None:
    spec = fault_relay_spec(WORLD, control_plane="127.0.0.1:40123", token="t", state_file=tmp_path / "s.json")
    links = [arg for arg in spec.argv if arg.startswith("--link=")]
    assert links == [f"--link={control_plane_link(r.id)}=0:127.0.0.1:40123" for r in WORLD.regions]
    assert spec.pin is not None
    ready = report(
        admin="http://127.0.0.1:7000",
        **{control_plane_link(r.id): f"127.0.0.1:{7001 + i}" for i, r in enumerate(WORLD.regions)},
    )
    pinned = list(spec.pin(spec.argv, ready))
    assert pinned[pinned.index("--admin-port") + 1] == "7000"
    assert [arg for arg in pinned if arg.startswith("--link=")] == [
        f"--link={control_plane_link(r.id)}={7001 + i}:127.0.0.1:40123" for i, r in enumerate(WORLD.regions)
    ]
    assert spec.env == {"EDGE_FAULTRELAY_TOKEN": "t"}


def test_the_router_gets_the_admin_token_in_its_environment(tmp_path: Path) -> None:
    spec = router_spec(
        WORLD, control_plane="127.0.0.1:1", router_token="n", admin_token="a", geo_cache_dir=tmp_path
    )
    assert spec.env["EDGE_ROUTER_ADMIN_TOKEN"] == "a"
    assert "a" not in spec.argv  # tokens never on a command line (ps shows them)
