"""What a rendering may change besides the world: image, namespace, broker, collector, sizes.

Also the fixed names every document agrees on (Services, Secrets, ports, mount paths), so
that a process's flags, its Service and the NetworkPolicies that admit it cannot disagree.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from runtime.errors import ConfigError
from tracing.errors import ExportSettingsError
from tracing.settings import edgecdn_version, parse_endpoint

# What `docker build -t edgecdn:VERSION .` makes; kind and minikube can load it as it is.
DEFAULT_IMAGE = f"edgecdn:{edgecdn_version()}"
DEFAULT_NAMESPACE = "edgecdn"
# Pods reach each other from this network; the edge nodes believe X-Forwarded-For only from
# it (the NetworkPolicies already admit only the router). 10.0.0.0/8 covers the default pod
# ranges of GKE, EKS (VPC CNI in a 10.x VPC), AKS and kubeadm with Calico or Flannel.
DEFAULT_POD_CIDR = "10.0.0.0/8"
# A DNS-1123 label: what Kubernetes accepts as a namespace name.
DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?$")
_IMAGE = re.compile(r"^[a-z0-9][a-z0-9._/:@-]*$", re.IGNORECASE)
_QUANTITY = re.compile(r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")

# Ports inside the pods (Services expose the same numbers).
CONTROL_PLANE_GRPC_PORT = 7000
CONTROL_PLANE_METRICS_PORT = 9100
EDGE_HTTP_PORT = 8080
ROUTER_HTTP_PORT = 8080
ROUTER_PUBLIC_PORT = 80
# The router's /metrics and /_router/... (its --admin-port): never behind the LoadBalancer.
ROUTER_ADMIN_PORT = 9101
MQTT_PORT = 1883
MQTTS_PORT = 8883
GATEWAY_METRICS_PORT = 9102

# Object names.
APP_NAME = "edgecdn"
CONTROL_PLANE = "control-plane"
ROUTER = "edge-router"
BROKER = "mqtt-broker"
WORLD_CONFIGMAP = "edgecdn-world"
TOKENS_SECRET = "edgecdn-tokens"  # noqa: S105 - a Secret\'s name, not a value
MQTT_SECRET = "edgecdn-mqtt"  # noqa: S105 - a Secret\'s name, not a value
SIGNING_SECRET = "edgecdn-signing-key"  # noqa: S105 - a Secret\'s name, not a value
OTLP_SECRET = "edgecdn-otlp"  # noqa: S105 - a Secret\'s name, not a value
# cert-manager's shape (keys tls.crt, tls.key, ca.crt); `edgecdn k8s pki` makes the files.
SERVER_TLS_SECRET = "edgecdn-control-plane-tls"  # noqa: S105 - a Secret\'s name, not a value
CLIENT_TLS_SECRET = "edgecdn-client-tls"  # noqa: S105 - a Secret\'s name, not a value
BROKER_TLS_SECRET = "edgecdn-mqtt-tls"  # noqa: S105 - a Secret\'s name, not a value
TLS_KEYS = ("tls.crt", "tls.key", "ca.crt")
SERVICE_ACCOUNT = "edgecdn"

# Paths inside the containers (the image's WORKDIR is /app; its root filesystem is read-only).
APP_DIR = "/app"
WORLD_DIR = "/etc/edgecdn/world"
WORLD_FILE = f"{WORLD_DIR}/world.toml"
TOKENS_DIR = "/etc/edgecdn/tokens"
MQTT_USERS_DIR = "/etc/edgecdn/mqtt"
KEYS_DIR = "/etc/edgecdn/keys"
TRUSTED_KEY = f"{KEYS_DIR}/signing.pub"
SERVER_TLS_DIR = "/etc/edgecdn/tls"
CLIENT_TLS_DIR = "/etc/edgecdn/client-tls"
DATA_DIR = "/var/lib/edgecdn"


@dataclass(frozen=True, slots=True, kw_only=True)
class RenderOptions:
    """Everything a rendering takes besides the world; validated once, here."""

    image: str = DEFAULT_IMAGE
    namespace: str = DEFAULT_NAMESPACE
    # None: run a Mosquitto broker in the cluster; else every client uses this broker.
    external_mqtt: str | None = None
    # The OTLP/gRPC collector the control plane forwards every span to (its own and those
    # the nodes, router and gateways send it); None: spans stay in the control plane.
    otlp_endpoint: str | None = None
    pod_cidr: str = DEFAULT_POD_CIDR
    storage_class: str | None = None
    storage_size: str = "5Gi"
    router_replicas: int = 2
    # The HorizontalPodAutoscaler may grow a region to this many times its world-file size.
    max_scale: int = 4
    # Mutual TLS inside the cluster (gRPC to the control plane, MQTT to the in-cluster
    # broker); off only where a service mesh (Istio, Linkerd) gives pods mutual TLS (--no-tls).
    tls: bool = True

    def __post_init__(self) -> None:
        if not _IMAGE.match(self.image):
            raise ConfigError(field="--image", reason=f"{self.image!r} is not an image reference")
        if not DNS_LABEL.match(self.namespace):
            raise ConfigError(
                field="--namespace",
                reason=f"{self.namespace!r} is not a DNS-1123 label (lower case, digits, '-', 1-63)",
            )
        if self.external_mqtt is not None:
            _check_mqtt_url(self.external_mqtt)
        if self.otlp_endpoint is not None:
            try:
                parse_endpoint(self.otlp_endpoint, setting="--otlp-endpoint")
            except ExportSettingsError as exc:
                raise ConfigError(field="--otlp-endpoint", reason=exc.reason) from exc
        try:
            ipaddress.ip_network(self.pod_cidr)
        except ValueError as exc:
            raise ConfigError(field="--pod-cidr", reason=str(exc)) from exc
        if self.storage_class is not None and not _DNS_SUBDOMAIN.match(self.storage_class):
            raise ConfigError(field="--storage-class", reason=f"{self.storage_class!r} is not a name")
        if not _QUANTITY.match(self.storage_size):
            raise ConfigError(field="--storage-size", reason=f"{self.storage_size!r} is not a size like 5Gi")
        if not 1 <= self.router_replicas <= 100:
            raise ConfigError(field="--router-replicas", reason="must be within 1..100")
        if not 1 <= self.max_scale <= 100:
            raise ConfigError(field="--max-scale", reason="must be within 1..100")

    @property
    def control_plane_address(self) -> str:
        """host:port that nodes, gateways and the router dial (the Service's DNS name)."""
        return f"{CONTROL_PLANE}.{self.namespace}.svc:{CONTROL_PLANE_GRPC_PORT}"

    @property
    def mqtt_port(self) -> int:
        """The in-cluster broker's port: MQTT over TLS's own with ``tls``."""
        return MQTTS_PORT if self.tls else MQTT_PORT

    @property
    def mqtt_url(self) -> str:
        scheme = "mqtts" if self.tls else "mqtt"
        return self.external_mqtt or f"{scheme}://{BROKER}.{self.namespace}.svc:{self.mqtt_port}"


def _check_mqtt_url(url: str) -> None:
    try:
        parsed = urlsplit(url)
        port = parsed.port
    except ValueError as exc:
        raise ConfigError(field="--mqtt", reason=f"{url!r}: {exc}") from exc
    if parsed.scheme not in ("mqtt", "mqtts") or not parsed.hostname or port is None:
        raise ConfigError(field="--mqtt", reason=f"{url!r} is not an mqtt:// or mqtts://host:port URL")
