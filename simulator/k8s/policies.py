"""Who may talk to whom: NetworkPolicies over a namespace that denies all ingress by default.

- edge nodes, gateways and the router reach the control plane's gRPC port (and so do pods
  labelled as ``edgectl``, for operators working from inside the cluster);
- only the router reaches the edge nodes;
- the control plane, the edge nodes and the gateways reach the broker;
- anyone reaches the router (it is the front door) and the control plane's /metrics;
  pods of the cluster (Prometheus) reach the router's admin port (/metrics, /_router/...)
  and the gateways' /metrics.

Egress is left open: nodes fetch from origins anywhere and the control plane may forward
spans to a collector outside. Kubelet probes are not subject to NetworkPolicies.
"""

from __future__ import annotations

from collections.abc import Sequence

from simulator.k8s.iot import GATEWAY
from simulator.k8s.options import (
    APP_NAME,
    BROKER,
    CONTROL_PLANE,
    CONTROL_PLANE_GRPC_PORT,
    CONTROL_PLANE_METRICS_PORT,
    EDGE_HTTP_PORT,
    GATEWAY_METRICS_PORT,
    ROUTER,
    ROUTER_ADMIN_PORT,
    ROUTER_HTTP_PORT,
    RenderOptions,
)
from simulator.k8s.pods import COMPONENT_LABEL, Doc, labels, metadata
from simulator.k8s.workloads import EDGE_NODE

POLICY = "network-policy"
OPERATOR_COMPONENT = "edgectl"


def _from_components(components: Sequence[str]) -> Doc:
    return {
        "podSelector": {
            "matchLabels": {"app.kubernetes.io/name": APP_NAME},
            "matchExpressions": [{"key": COMPONENT_LABEL, "operator": "In", "values": list(components)}],
        }
    }


def _port(port: int) -> Doc:
    return {"protocol": "TCP", "port": port}


def _from_cluster(port: int) -> Doc:
    """Any pod of the cluster (a Prometheus in its own namespace), on ``port`` only."""
    return {"from": [{"namespaceSelector": {}}], "ports": [_port(port)]}


def _policy(name: str, namespace: str, selector: Doc, ingress: list[Doc]) -> Doc:
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": metadata(name, namespace, POLICY),
        "spec": {"podSelector": selector, "policyTypes": ["Ingress"], "ingress": ingress},
    }


def network_policies(options: RenderOptions) -> list[Doc]:
    ns = options.namespace
    policies = [
        # No ingress rule at all: everything not admitted below is refused.
        _policy("default-deny-ingress", ns, {}, []),
        _policy(
            CONTROL_PLANE,
            ns,
            {"matchLabels": labels(CONTROL_PLANE)},
            [
                {
                    "from": [_from_components([EDGE_NODE, GATEWAY, ROUTER, OPERATOR_COMPONENT])],
                    "ports": [_port(CONTROL_PLANE_GRPC_PORT)],
                },
                {"ports": [_port(CONTROL_PLANE_METRICS_PORT)]},
            ],
        ),
        # Their /metrics, for Prometheus anywhere in the cluster (the kubelet's probes pass anyway).
        _policy(GATEWAY, ns, {"matchLabels": labels(GATEWAY)}, [_from_cluster(GATEWAY_METRICS_PORT)]),
        _policy(
            EDGE_NODE,
            ns,
            {"matchLabels": labels(EDGE_NODE)},
            [{"from": [_from_components([ROUTER])], "ports": [_port(EDGE_HTTP_PORT)]}],
        ),
        _policy(
            ROUTER,
            ns,
            {"matchLabels": labels(ROUTER)},
            [
                {"ports": [_port(ROUTER_HTTP_PORT)]},
                _from_cluster(ROUTER_ADMIN_PORT),
            ],
        ),
    ]
    if options.external_mqtt is None:
        policies.append(
            _policy(
                BROKER,
                ns,
                {"matchLabels": labels(BROKER)},
                [
                    {
                        "from": [_from_components([CONTROL_PLANE, EDGE_NODE, GATEWAY])],
                        "ports": [_port(options.mqtt_port)],
                    }
                ],
            )
        )
    return policies
