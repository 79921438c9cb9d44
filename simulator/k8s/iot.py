"""The world's IoT half on Kubernetes: the Mosquitto broker (unless an external one is named)
and one ``iot-gateway`` Deployment per region with gateways, as ``edgecdn up`` lays them out
(simulator/iot_layout.py): same ids, same seed, same heat waves, same initial module.
"""

from __future__ import annotations

from geo.world import Region, World
from simulator.iot_layout import SENSOR_STATS, gateway_ids
from simulator.k8s.options import (
    APP_DIR,
    BROKER,
    BROKER_TLS_SECRET,
    DATA_DIR,
    GATEWAY_METRICS_PORT,
    MQTT_SECRET,
    MQTT_USERS_DIR,
    TOKENS_SECRET,
    TRUSTED_KEY,
    RenderOptions,
)
from simulator.k8s.pods import (
    Container,
    Doc,
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
)
from simulator.k8s.workloads import client_tls, mqtt_client_args, server_tls, signing_key_volume

GATEWAY = "iot-gateway"
GATEWAY_USER = "gateway"


def gateway_name(region: Region) -> str:
    return f"{GATEWAY}-{region.id}"


def broker(world: World, options: RenderOptions) -> list[Doc]:
    """Mosquitto, run by ``mqtt-broker`` from the users file in a Secret; none when external."""
    if options.external_mqtt is not None:
        return []
    selector = labels(BROKER)
    ns = options.namespace
    port = options.mqtt_port
    args = [
        "--host", "0.0.0.0",
        "--port", str(port),
        "--users", f"{MQTT_USERS_DIR}/users.json",
        # Its configuration and hashed password file are written here at start.
        "--data-dir", f"{DATA_DIR}/mqtt",
        "--engine", "mosquitto",
    ]  # fmt: skip
    volumes = [
        secret_volume("mqtt-users", MQTT_SECRET, MQTT_USERS_DIR, {"users.json": "users.json"}),
        scratch_volume("data", DATA_DIR, size="64Mi"),
    ]
    if options.tls:
        # mqtts:// only, and a client certificate of the deployment's CA besides the password.
        tls_args, tls_volume = server_tls(BROKER_TLS_SECRET)
        args += tls_args
        volumes.append(tls_volume)
    container = Container(
        name=BROKER,
        command="mqtt-broker",
        args=args,
        ports={"mqtt": port},
        volumes=volumes,
        resources=resources(cpu="100m", memory="64Mi", cpu_limit="1", memory_limit="256Mi"),
        probes={
            "readinessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 5, "failureThreshold": 2},
            "livenessProbe": {"tcpSocket": {"port": port}, "periodSeconds": 10, "failureThreshold": 3},
        },
    )
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(BROKER, ns, BROKER),
        "spec": {
            "replicas": 1,
            # Sessions are not persisted (Mosquitto's persistence is off): clients reconnect.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": template(selector, pod_spec(options.image, container), world_digest=world.digest),
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(BROKER, ns, BROKER),
        "spec": {
            "type": "ClusterIP",
            "selector": selector,
            "ports": [{"name": "mqtt", "port": port, "targetPort": "mqtt", "appProtocol": "mqtt"}],
        },
    }
    return [service, deployment]


def gateways(world: World, options: RenderOptions) -> list[Doc]:
    """Per region with gateways: one process that simulates them all, on the region's nodes."""
    return [_gateway_region(world, region, options) for region in world.regions if region.gateways > 0]


def _gateway_region(world: World, region: Region, options: RenderOptions) -> Doc:
    ids = gateway_ids(region.id, region.gateways)
    # One gateway keeps its exact id; N gateways are ID-1 .. ID-N (iot-gateway --count).
    gateway_id = ids[0] if len(ids) == 1 else f"{region.id}-gw"
    selector = labels(GATEWAY, region.id)
    heat_wave = ["--heat-wave", region.heat_wave] if region.heat_wave else []
    tls_args, tls_volumes = client_tls(options)
    args = [
        *mqtt_client_args(options, GATEWAY_USER),
        "--control-plane", options.control_plane_address,
        *tls_args,
        "--region", region.id,
        "--gateway-id", gateway_id,
        "--count", str(len(ids)),
        "--module", f"{APP_DIR}/{SENSOR_STATS.as_posix()}",
        "--seed", str(world.seed),
        *heat_wave,
        "--state-dir", DATA_DIR,
        "--http-host", "0.0.0.0",
        "--http-port", str(GATEWAY_METRICS_PORT),
        "--trusted-key", TRUSTED_KEY,
    ]  # fmt: skip
    container = Container(
        name=GATEWAY,
        command="iot-gateway",
        args=args,
        ports={"metrics": GATEWAY_METRICS_PORT},
        env=[
            secret_env("IOT_GATEWAY_TOKEN", TOKENS_SECRET, GATEWAY_USER),
            secret_env("IOT_GATEWAY_MQTT_PASSWORD", MQTT_SECRET, GATEWAY_USER),
        ],
        volumes=[signing_key_volume(), scratch_volume("data", DATA_DIR, size="256Mi"), *tls_volumes],
        resources=resources(cpu="100m", memory="128Mi", cpu_limit="1", memory_limit="512Mi"),
        probes={"livenessProbe": http_probe("/healthz", GATEWAY_METRICS_PORT, period_s=30, failures=3)},
    )
    spec = pod_spec(options.image, container, affinity=region_affinity(region.id))
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(gateway_name(region), options.namespace, GATEWAY, region.id),
        "spec": {
            "replicas": 1,
            # The gateway ids are this process's: never two processes with the same ids.
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector},
            "template": template(selector, spec, world_digest=world.digest),
        },
    }
