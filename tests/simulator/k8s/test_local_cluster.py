"""The rendered manifests, run: one region's pods as local processes with exactly their
rendered flags, environment and mounted files (tests/simulator/k8s/local_pods.py), wired as
the Services wire them. A signed app deployed through the control plane is served through
the router, and every probe the manifests name answers."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp
import pytest

from mqtt_broker.server import mosquitto_binary
from simulator.k8s.options import TOKENS_SECRET, RenderOptions
from simulator.layout import WORLD_TRACE_ENV
from simulator.supervisor import ChildSpec, RunningChild, Supervisor
from tests.simulator.k8s.local_pods import LocalCluster, config_maps, make_secrets
from tests.simulator.k8s.manifests import REPO_ROOT, Doc, documents, pod_specs, rendered

pytestmark = [
    pytest.mark.slow,
    pytest.mark.timeout(120),
    pytest.mark.skipif(mosquitto_binary() is None, reason="the rendered broker runs Mosquitto"),
]
REGION = "eu-central-1"
MODULES = {
    "control-plane": "control_plane",
    "edge-node": "edge_node",
    "edge-router": "router",
    "iot-gateway": "iot_gateway",
    "mqtt-broker": "mqtt_broker",
}


async def eventually(check: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)


def _probe_path(spec: Doc, probe: str) -> str:
    path: str = spec["containers"][0][probe]["httpGet"]["path"]
    return path


async def test_one_rendered_region_serves_a_signed_app_through_its_router(
    supervisor: Supervisor, tmp_path: Path
) -> None:
    docs = documents(rendered(RenderOptions()))
    secrets = make_secrets(tmp_path)
    cluster = LocalCluster(root=tmp_path / "pods", config_maps=config_maps(docs), secret_values=secrets)
    pods = dict(pod_specs(docs))

    def child(pod: str) -> ChildSpec:
        args, env = cluster.command(pod, pods[pod])
        module = MODULES[pods[pod]["containers"][0]["command"][0]]
        return ChildSpec(name=pod, argv=(sys.executable, "-m", module, *args), env={**WORLD_TRACE_ENV, **env})

    broker = await supervisor.start(child("mqtt-broker"))
    # The broker speaks mqtts:// and requires the deployment's client certificate.
    assert broker.report.addresses["mqtt"].startswith("mqtts://")
    cluster.services[f"mqtt-broker.edgecdn.svc:{RenderOptions().mqtt_port}"] = broker.report.addresses[
        "mqtt"
    ].split("://", 1)[1]
    control = await supervisor.start(child("control-plane"))
    cluster.services[RenderOptions().control_plane_address] = control.report.addresses["grpc"]
    node, router, gateway = await supervisor.start_group(
        [child(f"edge-node-{REGION}"), child("edge-router"), child(f"iot-gateway-{REGION}")]
    )

    await _deploy_signed_app(control, secrets, tmp_path)
    node_url = node.report.addresses["http"]
    async with aiohttp.ClientSession() as http:

        async def status(url: str) -> int:
            async with http.get(url) as answer:
                await answer.read()
                return answer.status

        node_pod = pods[f"edge-node-{REGION}"]
        await eventually(
            lambda: _is(status(node_url + _probe_path(node_pod, "readinessProbe")), 200),
            timeout_s=30,
            what="the node's readiness probe",
        )
        assert await status(node_url + _probe_path(node_pod, "livenessProbe")) == 200
        router_url = router.report.addresses["http"]

        async def served() -> bool:
            async with http.get(router_url + "/hello") as answer:
                await answer.read()
                return answer.status == 200 and answer.headers.get("x-edge-region") == REGION

        # The router learns the node from the control plane's inventory, at the pod's IP.
        await eventually(served, timeout_s=30, what="the app through the router")
        assert await status(router_url + _probe_path(pods["edge-router"], "readinessProbe")) == 200
        gateway_url = gateway.report.addresses["http"]
        assert await status(gateway_url + _probe_path(pods[f"iot-gateway-{REGION}"], "livenessProbe")) == 200
        # The router's metrics are on its admin port, not behind the LoadBalancer's.
        assert await status(router_url + "/metrics") == 404
        assert await status(router.report.addresses["admin"] + "/metrics") == 200
        async with http.get(control.report.addresses["metrics"]) as metrics:
            assert metrics.status == 200

        async def router_and_node_spans() -> bool:  # exported over mutual TLS
            found = []
            for service in ("edge-router", "edge-node"):
                code, out, err = await _edgectl(
                    control, secrets, tmp_path, "traces", "list", "--service", service
                )
                assert code == 0, err
                found.append("no traces" not in out.lower() and len(out.strip().splitlines()) > 1)
            return all(found)

        await eventually(router_and_node_spans, timeout_s=20, what="the router's and node's spans")

        async def gateways_online() -> bool:  # gateway -> broker -> control plane, all over mutual TLS
            code, out, err = await _edgectl(control, secrets, tmp_path, "gateways", "list", "-o", "json")
            assert code == 0, err
            gateways = json.loads(out)
            return bool(gateways) and all(g["online"] for g in gateways if g["region"] == REGION)

        await eventually(gateways_online, timeout_s=20, what="the region's gateways online over mqtts")
        # With mutual TLS, the kubelet probes the control plane's /healthz on its metrics port.
        metrics_base = control.report.addresses["metrics"].rsplit("/", 1)[0]
        assert await status(metrics_base + _probe_path(pods["control-plane"], "readinessProbe")) == 200
    # Mutual TLS: a caller without the deployment's client certificate does not get in, token or not.
    returncode, _out, err = await _run(
        [sys.executable, "-m", "control_plane.edgectl", "--ca-cert", str(tmp_path / "pki" / "ca.crt"),
         "nodes", "list"],
        env={**os.environ, "EDGECTL_SERVER": control.report.addresses["grpc"],
             "EDGECTL_TOKEN": secrets[TOKENS_SECRET]["viewer"]},
    )  # fmt: skip
    assert returncode == 1
    assert "cannot reach the control plane" in err


async def _is(value: Awaitable[int], expected: int) -> bool:
    return await value == expected


async def _run(argv: list[str], *, env: dict[str, str]) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(process.communicate(), timeout=60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def _edgectl(
    control: RunningChild, secrets: dict[str, dict[str, str]], tmp_path: Path, *argv: str
) -> tuple[int, str, str]:
    """edgectl as an operator runs it: the operator token and client certificate (`edgecdn k8s pki`)."""
    env = {
        **os.environ,
        "EDGECTL_SERVER": control.report.addresses["grpc"],
        "EDGECTL_TOKEN": secrets[TOKENS_SECRET]["operator"],
    }
    pki = tmp_path / "pki"
    edgectl = [
        sys.executable, "-m", "control_plane.edgectl", "--ca-cert", str(pki / "ca.crt"),
        "--client-cert", str(pki / "operator.crt"), "--client-key", str(pki / "operator.key"),
    ]  # fmt: skip
    return await _run([*edgectl, *argv], env=env)


async def _deploy_signed_app(
    control: RunningChild, secrets: dict[str, dict[str, str]], tmp_path: Path
) -> None:
    """What an operator does (docs/kubernetes.md, step 4): register signed, deploy to all."""
    app = str(REPO_ROOT / "handlers" / "geo-hello" / "app.toml")
    for argv in (
        ["apps", "register", app, "--sign", str(tmp_path / "signing.key")],
        ["deploy", "geo-hello@1.0.0", "--all", "--timeout", "30"],
    ):
        returncode, _out, err = await _edgectl(control, secrets, tmp_path, *argv)
        assert returncode == 0, err
