"""Every rendered container's flags and environment, as its pod would get them, make a valid
configuration of its process (each process's own ``parse_config``)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

from simulator.k8s.options import RenderOptions
from tests.simulator.k8s.local_pods import LocalCluster, config_maps, make_secrets
from tests.simulator.k8s.manifests import documents, pod_specs, rendered

MODULES = {
    "control-plane": "control_plane.__main__",
    "edge-node": "edge_node.__main__",
    "edge-router": "router.__main__",
    "iot-gateway": "iot_gateway.__main__",
    "mqtt-broker": "mqtt_broker.__main__",
}


@pytest.mark.parametrize(
    "options",
    [
        RenderOptions(),
        RenderOptions(otlp_endpoint="https://otel.example:4317", external_mqtt="mqtt://mq:1883"),
    ],
    ids=["default", "variant"],
)
def test_every_container_configures_its_process(
    options: RenderOptions, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    docs = documents(rendered(options))
    cluster = LocalCluster(root=tmp_path, config_maps=config_maps(docs), secret_values=make_secrets(tmp_path))
    configured = set()
    for pod, spec in pod_specs(docs):
        command = spec["containers"][0]["command"][0]
        if MODULES[command] in configured:
            continue  # the regions' pods differ only in their region (test_invariants)
        args, env = cluster.command(pod, spec)
        with monkeypatch.context() as patch:
            for name, value in env.items():
                patch.setenv(name, value)
            config, _level = importlib.import_module(MODULES[command]).parse_config(args)
        configured.add(MODULES[command])
        if command == "edge-node":
            assert config.node_id == pod
            assert config.host == "127.0.0.1"  # the pod's IP
            assert config.token
    assert len(configured) == (5 if options.external_mqtt is None else 4)
