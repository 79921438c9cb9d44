"""The control plane, the edge nodes of each region and the router, as Kubernetes documents.

Flags are the processes' own (``control-plane --help``, ``edge-node --help``,
``edge-router --help``); secrets reach them as environment variables or files from Secrets,
never on a command line and never in the manifests.
"""

from __future__ import annotations

from geo.world import Region, World
from simulator.k8s.options import (
    CLIENT_TLS_DIR,
    CLIENT_TLS_SECRET,
    CONTROL_PLANE,
    CONTROL_PLANE_GRPC_PORT,
    CONTROL_PLANE_METRICS_PORT,
    DATA_DIR,
    EDGE_HTTP_PORT,
    KEYS_DIR,
    MQTT_SECRET,
    OTLP_SECRET,
    ROUTER,
    ROUTER_ADMIN_PORT,
    ROUTER_HTTP_PORT,
    ROUTER_PUBLIC_PORT,
    SERVER_TLS_DIR,
    SERVER_TLS_SECRET,
    SIGNING_SECRET,
    TLS_KEYS,
    TOKENS_DIR,
    TOKENS_SECRET,
    TRUSTED_KEY,
    WORLD_FILE,
    RenderOptions,
)
from simulator.k8s.pods import (
    Container,
    Doc,
    Volume,
    field_env,
    grpc_probe,
    http_probe,
    labels,
    metadata,
    pod_spec,
    region_affinity,
    resources,
    scratch_volume,
    secret_env,
    secret_volume,
    template,
    world_volume,
    zone_spread,
)

EDGE_NODE = "edge-node"
EDGE_NODE_CPU_LIMIT = 2  # cores: its --workers too
# The HorizontalPodAutoscaler adds edge nodes above this average CPU use (of the requests).
EDGE_CPU_TARGET_PERCENT = 70
MQTT_CLIENT_USER = "control-plane"  # the broker user of the control plane and the edge nodes


def edge_node_name(region: Region) -> str:
    return f"{EDGE_NODE}-{region.id}"


def signing_key_volume() -> Volume:
    """The public key modules must be signed with (nodes and gateways verify before compiling)."""
    return secret_volume("signing-key", SIGNING_SECRET, KEYS_DIR, {"signing.pub": "signing.pub"})


def client_tls(options: RenderOptions) -> tuple[list[str], list[Volume]]:
    """The flags and the volume with which a process dials the control plane over mutual TLS
    (runtime.tls), or nothing with ``--no-tls``."""
    if not options.tls:
        return [], []
    args = [
        "--control-plane-ca", f"{CLIENT_TLS_DIR}/ca.crt",
        "--control-plane-cert", f"{CLIENT_TLS_DIR}/tls.crt",
        "--control-plane-key", f"{CLIENT_TLS_DIR}/tls.key",
    ]  # fmt: skip
    return args, [client_tls_volume()]


def server_tls(secret: str) -> tuple[list[str], Volume]:
    """A server's certificate and key from ``secret``, requiring clients of its CA: the flags
    (``--tls-cert``, ``--tls-key``, ``--client-ca``, the same on the control plane and the
    broker) and the volume."""
    args = [
        "--tls-cert", f"{SERVER_TLS_DIR}/tls.crt",
        "--tls-key", f"{SERVER_TLS_DIR}/tls.key",
        "--client-ca", f"{SERVER_TLS_DIR}/ca.crt",
    ]  # fmt: skip
    return args, secret_volume("tls", secret, SERVER_TLS_DIR, {key: key for key in TLS_KEYS})


def client_tls_volume() -> Volume:
    """The deployment's client certificate, its key and the CA (``edgecdn k8s pki``)."""
    return secret_volume("client-tls", CLIENT_TLS_SECRET, CLIENT_TLS_DIR, {key: key for key in TLS_KEYS})


def mqtt_client_args(options: RenderOptions, user: str) -> list[str]:
    """``--mqtt`` and its user, and for the in-cluster broker over TLS, the client certificate
    it requires (from the client-tls volume). An external ``mqtts://`` broker is verified
    against the system's roots and gets no certificate of ours."""
    args = ["--mqtt", options.mqtt_url, "--mqtt-user", user]
    if options.tls and options.external_mqtt is None:
        args += [
            "--mqtt-ca", f"{CLIENT_TLS_DIR}/ca.crt",
            "--mqtt-cert", f"{CLIENT_TLS_DIR}/tls.crt",
            "--mqtt-key", f"{CLIENT_TLS_DIR}/tls.key",
        ]  # fmt: skip
    return args


def _control_plane_probes(options: RenderOptions) -> dict[str, Doc]:
    """Kubernetes' gRPC probe speaks plain gRPC only, so with TLS the kubelet asks the
    metrics port's /healthz instead (the same process, answering while it serves)."""
    if options.tls:
        return {
            # Opening SQLite and migrating may take a while on a slow volume.
            "startupProbe": http_probe("/healthz", CONTROL_PLANE_METRICS_PORT, period_s=2, failures=60),
            "readinessProbe": http_probe("/healthz", CONTROL_PLANE_METRICS_PORT, period_s=5, failures=2),
            "livenessProbe": http_probe("/healthz", CONTROL_PLANE_METRICS_PORT, period_s=10, failures=3),
        }
    return {
        "startupProbe": grpc_probe(CONTROL_PLANE_GRPC_PORT, period_s=2, failures=60),
        "readinessProbe": grpc_probe(CONTROL_PLANE_GRPC_PORT, period_s=5, failures=2),
        "livenessProbe": grpc_probe(CONTROL_PLANE_GRPC_PORT, period_s=10, failures=3),
    }


def control_plane(world: World, options: RenderOptions) -> list[Doc]:
    """A one-replica StatefulSet (SQLite and the module store on its PVC), its Services."""
    selector = labels(CONTROL_PLANE)
    ns = options.namespace
    args = [
        "--host", "0.0.0.0",
        "--port", str(CONTROL_PLANE_GRPC_PORT),
        "--metrics-port", str(CONTROL_PLANE_METRICS_PORT),
        "--data-dir", f"{DATA_DIR}/control-plane",
        "--tokens", f"{TOKENS_DIR}/tokens.json",
        "--world", WORLD_FILE,
        *mqtt_client_args(options, MQTT_CLIENT_USER),
    ]  # fmt: skip
    env = [secret_env("CONTROL_PLANE_MQTT_PASSWORD", MQTT_SECRET, MQTT_CLIENT_USER)]
    if options.otlp_endpoint is not None:
        # Every span reaches the control plane (its rollout gates are computed from them) and
        # is forwarded from there; the collector's credentials, if any, come from a Secret.
        args += ["--otlp-forward", options.otlp_endpoint]
        env.append(secret_env("OTEL_EXPORTER_OTLP_HEADERS", OTLP_SECRET, "headers", optional=True))
    volumes = [
        world_volume(),
        secret_volume("tokens", TOKENS_SECRET, TOKENS_DIR, {"tokens.json": "tokens.json"}),
    ]
    if options.tls:
        # Mutual TLS: a client must present a certificate of the deployment's CA (and then
        # its bearer token, which says who it is).
        tls_args, tls_volume = server_tls(SERVER_TLS_SECRET)
        args += tls_args
        volumes.append(tls_volume)
        if options.external_mqtt is None:  # its client certificate for the in-cluster broker
            volumes.append(client_tls_volume())
    container = Container(
        name=CONTROL_PLANE,
        command="control-plane",
        args=args,
        ports={"grpc": CONTROL_PLANE_GRPC_PORT, "metrics": CONTROL_PLANE_METRICS_PORT},
        env=env,
        volumes=volumes,
        resources=resources(cpu="500m", memory="512Mi", cpu_limit="2", memory_limit="2Gi"),
        probes=_control_plane_probes(options),
    )
    spec = pod_spec(options.image, container)
    # The claim from volumeClaimTemplates below: the pod's state survives rescheduling.
    spec["containers"][0]["volumeMounts"].append({"name": "data", "mountPath": DATA_DIR})
    claim: Doc = {
        "metadata": {"name": "data"},
        "spec": {
            "accessModes": ["ReadWriteOnce"],
            "resources": {"requests": {"storage": options.storage_size}},
        },
    }
    if options.storage_class is not None:
        claim["spec"]["storageClassName"] = options.storage_class
    statefulset = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": metadata(CONTROL_PLANE, ns, CONTROL_PLANE),
        "spec": {
            # One writer: the control plane locks its data directory (SQLite WAL, flock).
            "replicas": 1,
            "serviceName": f"{CONTROL_PLANE}-pods",
            "selector": {"matchLabels": selector},
            "template": template(selector, spec, world_digest=world.digest),
            "volumeClaimTemplates": [claim],
            "persistentVolumeClaimRetentionPolicy": {"whenDeleted": "Retain", "whenScaled": "Retain"},
        },
    }
    ports = [
        {"name": "grpc", "port": CONTROL_PLANE_GRPC_PORT, "targetPort": "grpc", "appProtocol": "grpc"},
        {
            "name": "metrics",
            "port": CONTROL_PLANE_METRICS_PORT,
            "targetPort": "metrics",
            "appProtocol": "http",
        },
    ]
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(CONTROL_PLANE, ns, CONTROL_PLANE),
        "spec": {"type": "ClusterIP", "selector": selector, "ports": ports},
    }
    headless = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(f"{CONTROL_PLANE}-pods", ns, CONTROL_PLANE),
        "spec": {"clusterIP": "None", "selector": selector, "ports": ports[:1]},
    }
    return [service, headless, statefulset]


def edge_nodes(world: World, options: RenderOptions) -> list[Doc]:
    """Per region with edge nodes: a Deployment on that region's nodes, a PDB, an HPA on CPU."""
    docs: list[Doc] = []
    for region in world.regions:
        if region.edge_nodes > 0:
            docs += _edge_region(world, region, options)
    return docs


def _edge_region(world: World, region: Region, options: RenderOptions) -> list[Doc]:
    name = edge_node_name(region)
    selector = labels(EDGE_NODE, region.id)
    ns = options.namespace
    tls_args, tls_volumes = client_tls(options)
    args = [
        "--region", region.id,
        "--world", WORLD_FILE,
        "--port", str(EDGE_HTTP_PORT),
        "--data-dir", DATA_DIR,
        "--control-plane", options.control_plane_address,
        *tls_args,
        # The router's pods are the only peers the NetworkPolicy admits: believe their
        # X-Forwarded-For (the client the router saw), from the pod network only.
        "--trusted-proxy", options.pod_cidr,
        "--trusted-key", TRUSTED_KEY,
        *mqtt_client_args(options, MQTT_CLIENT_USER),
        # One worker per core of the pod's CPU limit (the CPU count the process sees is the
        # machine's, not the pod's).
        "--workers", str(EDGE_NODE_CPU_LIMIT),
    ]  # fmt: skip
    container = Container(
        name=EDGE_NODE,
        command="edge-node",
        args=args,
        ports={"http": EDGE_HTTP_PORT},
        env=[
            # Replicas come and go (HPA): each is a node of its own, named after its pod.
            field_env("EDGE_NODE_ID", "metadata.name"),
            # The node tells the control plane the address it listens on, and the router
            # dials that: the pod's own IP, not 0.0.0.0.
            field_env("EDGE_NODE_HOST", "status.podIP"),
            secret_env("EDGE_NODE_TOKEN", TOKENS_SECRET, "node"),
            secret_env("EDGE_NODE_MQTT_PASSWORD", MQTT_SECRET, MQTT_CLIENT_USER),
        ],
        volumes=[
            world_volume(),
            signing_key_volume(),
            # Compiled modules, the geo database, the last good assignment: rebuilt or
            # fetched again by a new pod, so scratch space is enough.
            scratch_volume("data", DATA_DIR, size="2Gi"),
            *tls_volumes,
        ],
        resources=resources(
            cpu="500m", memory="512Mi", cpu_limit=str(EDGE_NODE_CPU_LIMIT), memory_limit="2Gi"
        ),
        probes={
            # The first start builds the world's geo database.
            "startupProbe": http_probe("/healthz", EDGE_HTTP_PORT, period_s=2, failures=60),
            # Ready once the control plane assigned an app (503 before).
            "readinessProbe": http_probe("/readyz", EDGE_HTTP_PORT, period_s=5, failures=2),
            "livenessProbe": http_probe("/healthz", EDGE_HTTP_PORT, period_s=10, failures=3),
        },
    )
    spec = pod_spec(options.image, container, affinity=region_affinity(region.id))
    spec["topologySpreadConstraints"] = zone_spread(selector)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(name, ns, EDGE_NODE, region.id),
        "spec": {
            "replicas": region.edge_nodes,
            "selector": {"matchLabels": selector},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": template(selector, spec, world_digest=world.digest),
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(name, ns, EDGE_NODE, region.id),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
    autoscaler = {
        "apiVersion": "autoscaling/v2",
        "kind": "HorizontalPodAutoscaler",
        "metadata": metadata(name, ns, EDGE_NODE, region.id),
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": name},
            "minReplicas": region.edge_nodes,
            "maxReplicas": region.edge_nodes * options.max_scale,
            "metrics": [
                {
                    "type": "Resource",
                    "resource": {
                        "name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": EDGE_CPU_TARGET_PERCENT},
                    },
                }
            ],
        },
    }
    return [deployment, budget, autoscaler]


def router(world: World, options: RenderOptions) -> list[Doc]:
    """The front door: a Deployment following the control plane's inventory, a LoadBalancer."""
    selector = labels(ROUTER)
    ns = options.namespace
    tls_args, tls_volumes = client_tls(options)
    args = [
        "--world", WORLD_FILE,
        "--host", "0.0.0.0",
        "--port", str(ROUTER_HTTP_PORT),
        # /metrics and /_router/... on a port the LoadBalancer does not expose (the public
        # port keeps /healthz for the load balancer's checks).
        "--admin-port", str(ROUTER_ADMIN_PORT),
        "--control-plane", options.control_plane_address,
        *tls_args,
        # The network between clients and PoPs is real here: nothing to emulate.
        "--wan", "off",
        "--geo-cache-dir", f"{DATA_DIR}/geo",
    ]  # fmt: skip
    container = Container(
        name=ROUTER,
        command="edge-router",
        args=args,
        ports={"http": ROUTER_HTTP_PORT, "admin": ROUTER_ADMIN_PORT},
        env=[secret_env("EDGE_ROUTER_TOKEN", TOKENS_SECRET, "router")],
        volumes=[world_volume(), scratch_volume("data", DATA_DIR, size="256Mi"), *tls_volumes],
        resources=resources(cpu="500m", memory="256Mi", cpu_limit="2", memory_limit="1Gi"),
        probes={
            "startupProbe": http_probe("/healthz", ROUTER_HTTP_PORT, period_s=2, failures=60),
            "readinessProbe": http_probe("/healthz", ROUTER_HTTP_PORT, period_s=5, failures=2),
            "livenessProbe": http_probe("/healthz", ROUTER_HTTP_PORT, period_s=10, failures=3),
        },
    )
    spec = pod_spec(options.image, container)
    spec["topologySpreadConstraints"] = zone_spread(selector)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(ROUTER, ns, ROUTER),
        "spec": {
            "replicas": options.router_replicas,
            "selector": {"matchLabels": selector},
            "template": template(selector, spec, world_digest=world.digest),
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ROUTER, ns, ROUTER),
        "spec": {
            "type": "LoadBalancer",
            # Keep the client's own address: the router locates clients by it.
            "externalTrafficPolicy": "Local",
            "selector": selector,
            "ports": [{"name": "http", "port": ROUTER_PUBLIC_PORT, "targetPort": "http", "protocol": "TCP"}],
        },
    }
    budget = {
        "apiVersion": "policy/v1",
        "kind": "PodDisruptionBudget",
        "metadata": metadata(ROUTER, ns, ROUTER),
        "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}},
    }
    return [service, deployment, budget]
