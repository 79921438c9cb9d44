"""Invariants of the rendering for any world: each region is laid out as its world file says,
names are unique, every selector selects its own pods, and every pod is restricted."""

from __future__ import annotations

import ipaddress
from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st

from geo.world import Country, Region, World
from simulator.k8s.options import RenderOptions
from simulator.k8s.render import render
from tests.simulator.k8s.manifests import Doc, documents, of_kind, pod_specs

COUNTRY = Country(
    code="KR",
    name="South Korea",
    continent="AS",
    city="Seoul",
    latitude=36.9,
    longitude=127.3,
    loopback=ipaddress.IPv4Network("127.1.0.0/16"),
)


@st.composite
def worlds(draw: st.DrawFn) -> World:
    count = draw(st.integers(min_value=1, max_value=6))
    regions = tuple(
        Region(
            id=f"region-{index}",
            pop=f"City {index}",
            latitude=draw(st.floats(min_value=-90, max_value=90)),
            longitude=draw(st.floats(min_value=-180, max_value=180)),
            edge_nodes=draw(st.integers(min_value=0, max_value=12)),
            gateways=draw(st.integers(min_value=0, max_value=5)),
            heat_wave=draw(st.sampled_from(["", "30s,1h"])),
        )
        for index in range(count)
    )
    return World(seed=draw(st.integers(min_value=0, max_value=2**31)), regions=regions, countries=(COUNTRY,))


options_strategy = st.builds(
    RenderOptions,
    namespace=st.sampled_from(["edgecdn", "cdn-prod", "a"]),
    external_mqtt=st.sampled_from([None, "mqtt://broker.example:1883"]),
    otlp_endpoint=st.sampled_from([None, "collector:4317", "https://otel.example"]),
    max_scale=st.integers(min_value=1, max_value=10),
)


def _named(docs: list[Doc], kind: str) -> dict[str, Doc]:
    return {doc["metadata"]["name"]: doc for doc in of_kind(docs, kind)}


@settings(max_examples=60, deadline=None)
@given(world=worlds(), options=options_strategy)
def test_every_region_is_laid_out_as_its_world_file_says(world: World, options: RenderOptions) -> None:
    docs = documents(render(world, "seed = 1\n", options))
    deployments = _named(docs, "Deployment")
    scalers = _named(docs, "HorizontalPodAutoscaler")
    for region in world.regions:
        nodes = deployments.get(f"edge-node-{region.id}")
        gateways = deployments.get(f"iot-gateway-{region.id}")
        if region.edge_nodes == 0:
            assert nodes is None
        else:
            assert nodes is not None
            assert nodes["spec"]["replicas"] == region.edge_nodes
            scaler = scalers[f"edge-node-{region.id}"]["spec"]
            assert scaler["minReplicas"] == region.edge_nodes <= scaler["maxReplicas"]
        if region.gateways == 0:
            assert gateways is None
        else:
            assert gateways is not None
            args = gateways["spec"]["template"]["spec"]["containers"][0]["args"]
            assert args[args.index("--count") + 1] == str(region.gateways)
            assert ("--heat-wave" in args) == bool(region.heat_wave)
    assert ("mqtt-broker" in deployments) == (options.external_mqtt is None)


@settings(max_examples=60, deadline=None)
@given(world=worlds(), options=options_strategy)
def test_names_are_unique_and_selectors_select_their_own_pods(world: World, options: RenderOptions) -> None:
    docs = documents(render(world, "seed = 1\n", options))
    names = Counter((doc["kind"], doc["metadata"]["name"]) for doc in docs)
    assert [key for key, count in names.items() if count > 1] == []
    for doc in docs:
        if doc["kind"] in {"Deployment", "StatefulSet"}:
            selector = doc["spec"]["selector"]["matchLabels"]
            pod_labels = doc["spec"]["template"]["metadata"]["labels"]
            assert selector.items() <= pod_labels.items()
            # No two workloads share a selector: each Deployment owns its pods.
            others = [
                other
                for other in docs
                if other is not doc
                and other["kind"] in {"Deployment", "StatefulSet"}
                and other["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
            ]
            assert others == []
    for _name, spec in pod_specs(docs):
        context = spec["containers"][0]["securityContext"]
        assert context["allowPrivilegeEscalation"] is False
        assert context["capabilities"] == {"drop": ["ALL"]}
