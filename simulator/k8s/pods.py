"""Building blocks every workload shares: labels, the restricted security profile, volumes,
environment from Secrets and the downward API, probes, resources, region affinity.

Every pod is built through ``pod_spec``, so none can miss the restricted Pod Security
Standard (non-root, no privilege escalation, every capability dropped, seccomp
RuntimeDefault) or the read-only root filesystem the image is made for.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from simulator.k8s.options import APP_NAME, SERVICE_ACCOUNT, WORLD_CONFIGMAP, WORLD_DIR

Doc = dict[str, Any]

# The image's user (Dockerfile: USER 10001:10001); fsGroup makes mounted volumes its own.
RUN_AS_USER = 10001
REGION_LABEL = "topology.kubernetes.io/region"
ZONE_LABEL = "topology.kubernetes.io/zone"
COMPONENT_LABEL = "app.kubernetes.io/component"
EDGECDN_REGION_LABEL = "edgecdn.dev/region"
WORLD_DIGEST_ANNOTATION = "edgecdn.dev/world-sha256"


def labels(component: str, region: str | None = None) -> dict[str, str]:
    """The labels of a component's objects and pods (the selector is the same set)."""
    found = {"app.kubernetes.io/name": APP_NAME, COMPONENT_LABEL: component}
    if region is not None:
        found[EDGECDN_REGION_LABEL] = region
    return found


def metadata(name: str, namespace: str, component: str, region: str | None = None) -> Doc:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {**labels(component, region), "app.kubernetes.io/part-of": APP_NAME},
    }


def restricted_container_context() -> Doc:
    """The container half of the restricted profile, plus a read-only root filesystem."""
    return {
        "allowPrivilegeEscalation": False,
        "capabilities": {"drop": ["ALL"]},
        "privileged": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def restricted_pod_context() -> Doc:
    return {
        "runAsNonRoot": True,
        "runAsUser": RUN_AS_USER,
        "runAsGroup": RUN_AS_USER,
        "fsGroup": RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def secret_env(name: str, secret: str, key: str, *, optional: bool = False) -> Doc:
    """An environment variable read from a Secret: the manifest names it, never holds it."""
    ref: Doc = {"name": secret, "key": key}
    if optional:
        ref["optional"] = True
    return {"name": name, "valueFrom": {"secretKeyRef": ref}}


def field_env(name: str, field_path: str) -> Doc:
    """An environment variable from the downward API (``metadata.name``, ``status.podIP``)."""
    return {"name": name, "valueFrom": {"fieldRef": {"fieldPath": field_path}}}


def value_env(name: str, value: str) -> Doc:
    return {"name": name, "value": value}


def http_probe(path: str, port: int, *, period_s: int, failures: int) -> Doc:
    return {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def grpc_probe(port: int, *, period_s: int, failures: int) -> Doc:
    """Kubernetes' own gRPC probe: grpc.health.v1.Health/Check (open without a token)."""
    return {
        "grpc": {"port": port},
        "periodSeconds": period_s,
        "timeoutSeconds": 2,
        "failureThreshold": failures,
    }


def resources(*, cpu: str, memory: str, cpu_limit: str, memory_limit: str) -> Doc:
    return {
        "requests": {"cpu": cpu, "memory": memory},
        "limits": {"cpu": cpu_limit, "memory": memory_limit},
    }


@dataclass(frozen=True, slots=True, kw_only=True)
class Volume:
    """A volume and where the container sees it."""

    name: str
    mount_path: str
    source: Doc
    read_only: bool = True

    def mount(self) -> Doc:
        return {"name": self.name, "mountPath": self.mount_path, "readOnly": self.read_only}

    def volume(self) -> Doc:
        return {"name": self.name, **self.source}


def world_volume() -> Volume:
    return Volume(name="world", mount_path=WORLD_DIR, source={"configMap": {"name": WORLD_CONFIGMAP}})


def secret_volume(name: str, secret: str, mount_path: str, items: Mapping[str, str]) -> Volume:
    """A Secret's keys as files (key -> file name), readable by the pod's group only: the
    kubelet makes them root's, in the pod's fsGroup, which the process is a member of."""
    source = {
        "secret": {
            "secretName": secret,
            "defaultMode": 0o440,
            "items": [{"key": key, "path": path} for key, path in items.items()],
        }
    }
    return Volume(name=name, mount_path=mount_path, source=source)


def scratch_volume(name: str, mount_path: str, *, size: str) -> Volume:
    """A writable emptyDir: the root filesystem is read-only."""
    return Volume(name=name, mount_path=mount_path, source={"emptyDir": {"sizeLimit": size}}, read_only=False)


@dataclass(frozen=True, slots=True, kw_only=True)
class Container:
    """One process of the image: which console script, its flags, what it mounts."""

    name: str
    command: str
    args: Sequence[str]
    ports: Mapping[str, int]
    env: Sequence[Doc] = ()
    volumes: Sequence[Volume] = ()
    resources: Doc = field(default_factory=dict)
    probes: Mapping[str, Doc] = field(default_factory=dict)


def pod_spec(image: str, container: Container, *, affinity: Doc | None = None, grace_s: int = 30) -> Doc:
    """A pod running ``container`` under the restricted profile; /tmp is a small emptyDir."""
    tmp = scratch_volume("tmp", "/tmp", size="64Mi")  # noqa: S108 - the container's own /tmp
    volumes = [*container.volumes, tmp]
    spec: Doc = {
        "serviceAccountName": SERVICE_ACCOUNT,
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,
        "terminationGracePeriodSeconds": grace_s,
        "securityContext": restricted_pod_context(),
        "containers": [
            {
                "name": container.name,
                "image": image,
                "imagePullPolicy": "IfNotPresent",
                "command": [container.command],
                "args": list(container.args),
                **_ports(container.ports),
                "env": [value_env("PYTHONUNBUFFERED", "1"), *container.env],
                "volumeMounts": [volume.mount() for volume in volumes],
                "resources": container.resources,
                **container.probes,
                "securityContext": restricted_container_context(),
            }
        ],
        "volumes": [volume.volume() for volume in volumes],
    }
    if affinity is not None:
        spec["affinity"] = affinity
    return spec


def _ports(ports: Mapping[str, int]) -> Doc:
    """The ports others reach (Services name them; Prometheus discovers them); none: no key."""
    if not ports:
        return {}
    return {
        "ports": [
            {"name": port_name, "containerPort": port, "protocol": "TCP"} for port_name, port in ports.items()
        ]
    }


def region_affinity(region: str) -> Doc:
    """Schedule only on the Kubernetes nodes of ``region`` (the world's region id)."""
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [
                    {"matchExpressions": [{"key": REGION_LABEL, "operator": "In", "values": [region]}]}
                ]
            }
        }
    }


def zone_spread(selector: Mapping[str, str]) -> list[Doc]:
    """Spread a region's replicas over its zones where it can (a zone outage keeps some)."""
    return [
        {
            "maxSkew": 1,
            "topologyKey": ZONE_LABEL,
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": dict(selector)},
        }
    ]


def template(selector: Mapping[str, str], spec: Doc, *, world_digest: str) -> Doc:
    """A pod template; a changed world file changes the annotation and so rolls the pods."""
    return {
        "metadata": {"labels": dict(selector), "annotations": {WORLD_DIGEST_ANNOTATION: world_digest}},
        "spec": spec,
    }
