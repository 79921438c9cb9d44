"""`edgecdn k8s render` of the default world: committed as rendered, valid against the
Kubernetes API's schemas, restricted on every pod, fenced by NetworkPolicies."""

from __future__ import annotations

import copy
from dataclasses import replace

import kubernetes_validate  # type: ignore[import-untyped]
import pytest

from runtime.errors import ConfigError
from simulator.k8s.options import RenderOptions
from simulator.k8s.render import SECRETS, to_yaml
from tests.simulator.k8s.manifests import (
    COMMITTED,
    DEFAULT_WORLD,
    Doc,
    default_world,
    documents,
    of_kind,
    pod_specs,
    rendered,
)

# A current release; kubernetes-validate ships its schemas (no network).
KUBERNETES_VERSION = "1.37.0"
RESTRICTED_VOLUME_TYPES = {
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "persistentVolumeClaim", "projected",
    "secret",
}  # fmt: skip
VARIANT = RenderOptions(
    image="registry.example/edgecdn:1.2.3",
    namespace="cdn",
    external_mqtt="mqtt://broker.iot.example:1883",
    otlp_endpoint="http://otel-collector.observability:4317",
    storage_class="fast-ssd",
)


def test_committed_manifests_match_the_renderer() -> None:
    manifests = rendered()
    committed = {path.name for path in COMMITTED.glob("*.yaml")}
    assert committed == {m.file_name for m in manifests}, "run `edgecdn k8s render --out deploy/k8s`"
    drifted = [
        m.file_name
        for m in manifests
        if (COMMITTED / m.file_name).read_text(encoding="utf-8")
        != to_yaml(m, world_name=DEFAULT_WORLD.as_posix())
    ]
    assert drifted == [], (
        f"deploy/k8s drifted from the renderer: {drifted}; run `edgecdn k8s render --out deploy/k8s`"
    )


@pytest.mark.parametrize("options", [RenderOptions(), VARIANT], ids=["default", "variant"])
def test_every_document_is_valid_against_the_kubernetes_schemas(options: RenderOptions) -> None:
    docs = documents(rendered(options))
    assert len(docs) > 30
    for doc in docs:
        kubernetes_validate.validate(doc, KUBERNETES_VERSION, strict=True)


def test_the_schema_check_refuses_unknown_fields() -> None:
    deployment = copy.deepcopy(of_kind(documents(rendered()), "Deployment")[0])
    deployment["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("options", [RenderOptions(), VARIANT], ids=["default", "variant"])
def test_every_pod_meets_the_restricted_pod_security_standard(options: RenderOptions) -> None:
    specs = list(pod_specs(documents(rendered(options))))
    assert len(specs) >= 3
    for name, spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True, name
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        assert spec["automountServiceAccountToken"] is False, name
        for forbidden in ("hostNetwork", "hostPID", "hostIPC", "hostUsers"):
            assert forbidden not in spec, (name, forbidden)
        for volume in spec["volumes"]:
            kinds = set(volume) - {"name"}
            assert kinds <= RESTRICTED_VOLUME_TYPES, (name, volume)
        for container in spec["containers"] + spec.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context["runAsNonRoot"] is True, name
            assert context["runAsUser"] != 0, name
            assert context["seccompProfile"] == {"type": "RuntimeDefault"}, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context.get("privileged", False) is False, name
            assert all("hostPort" not in port for port in container.get("ports", [])), name
            assert set(container["resources"]) == {"requests", "limits"}, name
            for kind in ("requests", "limits"):
                assert set(container["resources"][kind]) == {"cpu", "memory"}, (name, kind)


def test_the_namespace_enforces_the_restricted_profile() -> None:
    (namespace,) = of_kind(documents(rendered()), "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


def _policy(docs: list[Doc], name: str) -> Doc:
    (policy,) = [doc for doc in of_kind(docs, "NetworkPolicy") if doc["metadata"]["name"] == name]
    return policy


def _admitted_components(policy: Doc) -> set[str]:
    found = set()
    for rule in policy["spec"]["ingress"]:
        for peer in rule.get("from", []):
            for expression in peer["podSelector"]["matchExpressions"]:
                found.update(expression["values"])
    return found


def test_network_policies_deny_by_default_and_admit_only_the_named_peers() -> None:
    docs = documents(rendered())
    deny = _policy(docs, "default-deny-ingress")
    assert deny["spec"] == {"podSelector": {}, "policyTypes": ["Ingress"], "ingress": []}
    # Only the router reaches the edge nodes, on their HTTP port.
    nodes = _policy(docs, "edge-node")
    assert _admitted_components(nodes) == {"edge-router"}
    assert all("from" in rule for rule in nodes["spec"]["ingress"])
    # Nodes and gateways (and the router, and in-cluster operators) reach the control plane.
    control = _policy(docs, "control-plane")
    assert {"edge-node", "iot-gateway"} <= _admitted_components(control)
    grpc_rules = [
        rule for rule in control["spec"]["ingress"] if rule["ports"] == [{"protocol": "TCP", "port": 7000}]
    ]
    assert grpc_rules
    assert all("from" in rule for rule in grpc_rules)
    assert _admitted_components(_policy(docs, "mqtt-broker")) == {"control-plane", "edge-node", "iot-gateway"}


def test_each_region_gets_a_deployment_on_its_nodes_with_probes_a_budget_and_an_autoscaler() -> None:
    world, _ = default_world()
    docs = documents(rendered())
    deployments = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "Deployment")}
    budgets = {doc["metadata"]["name"] for doc in of_kind(docs, "PodDisruptionBudget")}
    autoscalers = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "HorizontalPodAutoscaler")}
    for region in world.regions:
        name = f"edge-node-{region.id}"
        deployment = deployments[name]
        assert deployment["spec"]["replicas"] == region.edge_nodes
        spec = deployment["spec"]["template"]["spec"]
        term = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        assert term["nodeSelectorTerms"] == [
            {
                "matchExpressions": [
                    {"key": "topology.kubernetes.io/region", "operator": "In", "values": [region.id]}
                ]
            }
        ]
        (container,) = spec["containers"]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        assert container["args"][container["args"].index("--region") + 1] == region.id
        assert name in budgets
        scaler = autoscalers[name]["spec"]
        assert scaler["scaleTargetRef"]["name"] == name
        assert scaler["minReplicas"] == region.edge_nodes
        assert scaler["metrics"][0]["resource"]["name"] == "cpu"
        gateway = deployments[f"iot-gateway-{region.id}"]
        assert gateway["spec"]["template"]["spec"]["affinity"] == spec["affinity"]


def test_the_control_plane_keeps_its_state_on_a_volume_and_is_probed() -> None:
    docs = documents(rendered(VARIANT))
    (statefulset,) = of_kind(docs, "StatefulSet")
    (claim,) = statefulset["spec"]["volumeClaimTemplates"]
    assert claim["spec"]["storageClassName"] == "fast-ssd"
    (container,) = statefulset["spec"]["template"]["spec"]["containers"]
    assert {"name": "data", "mountPath": "/var/lib/edgecdn"} in container["volumeMounts"]
    assert container["args"][container["args"].index("--data-dir") + 1].startswith("/var/lib/edgecdn/")
    # The kubelet's gRPC probe cannot speak TLS: with mutual TLS it asks the metrics port.
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert container[probe]["httpGet"] == {"path": "/healthz", "port": 9100}
    (plain,) = of_kind(documents(rendered(replace(VARIANT, tls=False))), "StatefulSet")
    (plain_container,) = plain["spec"]["template"]["spec"]["containers"]
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert plain_container[probe]["grpc"] == {"port": 7000}
    services = {doc["metadata"]["name"]: doc for doc in of_kind(docs, "Service")}
    assert services["control-plane"]["spec"]["ports"][0]["port"] == 7000
    assert services["edge-router"]["spec"]["type"] == "LoadBalancer"


def test_secrets_are_referenced_by_name_and_never_rendered() -> None:
    for options in (RenderOptions(), VARIANT):
        docs = documents(rendered(options))
        assert of_kind(docs, "Secret") == []
        for name, spec in pod_specs(docs):
            for container in spec["containers"]:
                for env in container["env"]:
                    ref = env.get("valueFrom", {}).get("secretKeyRef")
                    if ref is not None:
                        assert ref["key"] in SECRETS[ref["name"]], (name, ref)
                    else:
                        assert "TOKEN" not in env["name"], (name, env)
                        assert "PASSWORD" not in env["name"], (name, env)
            for volume in spec["volumes"]:
                if "secret" in volume:
                    keys = {item["key"] for item in volume["secret"]["items"]}
                    assert keys <= set(SECRETS[volume["secret"]["secretName"]]), (name, volume)


def test_an_otlp_collector_gets_every_span_through_the_control_plane() -> None:
    def forwards(docs: list[Doc]) -> list[str]:
        (statefulset,) = of_kind(docs, "StatefulSet")
        args = statefulset["spec"]["template"]["spec"]["containers"][0]["args"]
        return args[args.index("--otlp-forward") + 1 :][:1] if "--otlp-forward" in args else []

    assert forwards(documents(rendered())) == []
    docs = documents(rendered(VARIANT))
    assert forwards(docs) == ["http://otel-collector.observability:4317"]
    # The others keep sending to the control plane, whose rollout gates are computed from spans.
    for _name, spec in pod_specs(docs):
        assert all(
            not env["name"].startswith("OTEL_EXPORTER_OTLP_ENDPOINT") for env in spec["containers"][0]["env"]
        )


def test_an_external_broker_replaces_the_one_in_the_cluster() -> None:
    docs = documents(rendered(VARIANT))
    names = {doc["metadata"]["name"] for doc in docs}
    assert "mqtt-broker" not in names
    mqtt_args = [
        spec["containers"][0]["args"][spec["containers"][0]["args"].index("--mqtt") + 1]
        for _name, spec in pod_specs(docs)
        if "--mqtt" in spec["containers"][0]["args"]
    ]
    assert mqtt_args
    assert set(mqtt_args) == {"mqtt://broker.iot.example:1883"}
    assert all(doc["metadata"]["namespace"] == "cdn" for doc in docs if doc["kind"] != "Namespace")


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"namespace": "Edge_CDN"}, "--namespace"),
        ({"image": "not an image"}, "--image"),
        ({"external_mqtt": "tcp://broker:1883"}, "--mqtt"),
        ({"external_mqtt": "mqtt://broker:99999"}, "--mqtt"),
        ({"otlp_endpoint": "ftp://collector:4317"}, "--otlp-endpoint"),
        ({"pod_cidr": "10.0.0.0/33"}, "--pod-cidr"),
        ({"storage_size": "lots"}, "--storage-size"),
        ({"router_replicas": 0}, "--router-replicas"),
        ({"max_scale": 0}, "--max-scale"),
    ],
)
def test_bad_options_are_refused_with_the_flag_named(changes: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigError) as caught:
        RenderOptions(**changes)  # type: ignore[arg-type]
    assert caught.value.field == field


def _flag(args: list[str], flag: str) -> str | None:
    return args[args.index(flag) + 1] if flag in args else None


def _mounted_secrets(spec: Doc) -> dict[str, str]:
    """Mount path -> Secret name, of the pod's container."""
    secrets = {v["name"]: v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    (container,) = spec["containers"]
    return {m["mountPath"]: secrets[m["name"]] for m in container["volumeMounts"] if m["name"] in secrets}


@pytest.mark.parametrize("options", [RenderOptions(), VARIANT], ids=["default", "variant"])
def test_every_process_reaches_the_control_plane_over_mutual_tls(options: RenderOptions) -> None:
    docs = documents(rendered(options))
    dialers = 0
    for name, spec in pod_specs(docs):
        (container,) = spec["containers"]
        args, mounted = container["args"], _mounted_secrets(spec)
        if container["command"] == ["control-plane"]:
            for flag in ("--tls-cert", "--tls-key", "--client-ca"):
                path = _flag(args, flag)
                assert path is not None, (name, flag)
                assert mounted[path.rsplit("/", 1)[0]] == "edgecdn-control-plane-tls", (name, flag)
        elif "--control-plane" in args:
            dialers += 1
            for flag in ("--control-plane-ca", "--control-plane-cert", "--control-plane-key"):
                path = _flag(args, flag)
                assert path is not None, (name, flag)
                assert mounted[path.rsplit("/", 1)[0]] == "edgecdn-client-tls", (name, flag)
    assert dialers >= 3  # edge nodes, the router, gateways
    plain = documents(rendered(replace(options, tls=False)))
    for name, spec in pod_specs(plain):
        args = spec["containers"][0]["args"]
        assert not any(
            arg.startswith(("--control-plane-c", "--control-plane-k", "--tls-", "--client-ca"))
            for arg in args
        ), name
        assert "edgecdn-client-tls" not in _mounted_secrets(spec).values()


def test_the_in_cluster_broker_speaks_mutual_tls_and_an_external_one_is_only_verified() -> None:
    docs = documents(rendered(RenderOptions()))
    clients = 0
    for name, spec in pod_specs(docs):
        (container,) = spec["containers"]
        args, mounted = container["args"], _mounted_secrets(spec)
        if container["command"] == ["mqtt-broker"]:
            assert _flag(args, "--port") == "8883"
            for flag in ("--tls-cert", "--tls-key", "--client-ca"):
                path = _flag(args, flag)
                assert path is not None, flag
                assert mounted[path.rsplit("/", 1)[0]] == "edgecdn-mqtt-tls", flag
        elif "--mqtt" in args:
            clients += 1
            assert _flag(args, "--mqtt") == "mqtts://mqtt-broker.edgecdn.svc:8883", name
            for flag in ("--mqtt-ca", "--mqtt-cert", "--mqtt-key"):
                path = _flag(args, flag)
                assert path is not None, (name, flag)
                assert mounted[path.rsplit("/", 1)[0]] == "edgecdn-client-tls", (name, flag)
    assert clients >= 3  # the control plane, edge nodes, gateways
    for name, spec in pod_specs(documents(rendered(VARIANT))):  # an external mqtt:// broker
        args = spec["containers"][0]["args"]
        assert "--mqtt-cert" not in args, name
    for name, spec in pod_specs(documents(rendered(replace(RenderOptions(), tls=False)))):
        args = spec["containers"][0]["args"]
        assert "--mqtt-cert" not in args, name
        assert "--client-ca" not in args, name
        if "--mqtt" in args:
            assert _flag(args, "--mqtt") == "mqtt://mqtt-broker.edgecdn.svc:1883", name
