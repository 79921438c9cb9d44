"""Run a rendered container as a local process, the way the kubelet would run it in a pod.

Its volumes become directories (ConfigMaps and Secrets written as their files, empty
directories for the rest), its environment is resolved (Secret keys, the downward API), and
only what a cluster provides differently on one machine is translated: the image's /app is
the repository, a Service's DNS name is the local address of the process behind it, a
listener binds to 127.0.0.1 on a free port (0) rather than 0.0.0.0 on its fixed one.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from runtime.signing import generate_key_pair, public_key_path
from simulator.k8s.options import (
    APP_DIR,
    BROKER_TLS_SECRET,
    CLIENT_TLS_SECRET,
    DEFAULT_NAMESPACE,
    MQTT_SECRET,
    SERVER_TLS_SECRET,
    SIGNING_SECRET,
    TOKENS_SECRET,
)
from simulator.k8s.pki import make_pki
from tests.simulator.k8s.manifests import REPO_ROOT, Doc

PORT_FLAGS = ("--port", "--metrics-port", "--http-port", "--admin-port")
POD_IP = "127.0.0.1"


@dataclass
class LocalCluster:
    """What the pods of a rendering find around them, on one machine."""

    root: Path
    config_maps: Mapping[str, Mapping[str, str]]
    secret_values: Mapping[str, Mapping[str, str]]
    # A Service's address as the manifests name it -> where its process listens here.
    services: dict[str, str] = field(default_factory=dict)

    def _volume_dir(self, pod: str, volume: Doc) -> Path:
        directory: Path = self.root / pod / volume["name"]
        directory.mkdir(parents=True, exist_ok=True)
        if "configMap" in volume:
            for key, text in self.config_maps[volume["configMap"]["name"]].items():
                (directory / key).write_text(text, encoding="utf-8")
        elif "secret" in volume:
            values = self.secret_values[volume["secret"]["secretName"]]
            for item in volume["secret"]["items"]:
                (directory / item["path"]).write_text(values[item["key"]], encoding="utf-8")
        return directory

    def _env(self, pod: str, container: Doc) -> dict[str, str]:
        env = {}
        for variable in container["env"]:
            if "value" in variable:
                env[variable["name"]] = variable["value"]
                continue
            source = variable["valueFrom"]
            if "secretKeyRef" in source:
                ref = source["secretKeyRef"]
                value = self.secret_values.get(ref["name"], {}).get(ref["key"])
                if value is None and ref.get("optional"):
                    continue
                assert value is not None, f"{pod}: no secret {ref}"
                env[variable["name"]] = value
            else:
                path = source["fieldRef"]["fieldPath"]
                env[variable["name"]] = {"metadata.name": pod, "status.podIP": POD_IP}[path]
        return env

    def command(self, pod: str, pod_spec: Doc) -> tuple[list[str], dict[str, str]]:
        """(args, environment) of the pod's container as a local process."""
        (container,) = pod_spec["containers"]
        volumes = {volume["name"]: volume for volume in pod_spec["volumes"]}
        mounts = {
            mount["mountPath"]: (
                self._volume_dir(pod, volumes[mount["name"]])
                if mount["name"] in volumes
                else self._data_dir(pod, mount["name"])
            )
            for mount in container["volumeMounts"]
        }
        mounts[APP_DIR] = REPO_ROOT
        args = [self._translate(arg, mounts) for arg in container["args"]]
        for flag in PORT_FLAGS:
            if flag in args:
                args[args.index(flag) + 1] = "0"
        return args, self._env(pod, container)

    def _data_dir(self, pod: str, name: str) -> Path:
        # A StatefulSet's claim (volumeClaimTemplates): a directory of its own.
        directory = self.root / pod / name
        directory.mkdir(parents=True, exist_ok=True)
        return directory

    def _translate(self, arg: str, mounts: Mapping[str, Path]) -> str:
        if arg == "0.0.0.0":
            return POD_IP
        for mount_path in sorted(mounts, key=len, reverse=True):
            if arg == mount_path or arg.startswith(mount_path + "/"):
                return str(mounts[mount_path]) + arg[len(mount_path) :]
        for service, local in self.services.items():
            arg = arg.replace(service, local)
        return arg


def make_secrets(root: Path) -> dict[str, dict[str, str]]:
    """Every Secret the rendering references, made as docs/kubernetes.md makes them."""
    tokens = {role: secrets.token_urlsafe(24) for role in ("operator", "viewer", "node", "router", "gateway")}
    mqtt = {user: secrets.token_urlsafe(24) for user in ("control-plane", "gateway")}
    key = root / "signing.key"
    generate_key_pair(key)
    make_pki(root / "pki", namespace=DEFAULT_NAMESPACE)  # as `edgecdn k8s pki --out pki` does

    def tls_secret(stem: str) -> dict[str, str]:  # kubectl create secret generic ... (docs)
        pem = {
            name: (root / "pki" / name).read_text(encoding="utf-8") for name in (f"{stem}.crt", f"{stem}.key")
        }
        ca = (root / "pki" / "ca.crt").read_text(encoding="utf-8")
        return {"tls.crt": pem[f"{stem}.crt"], "tls.key": pem[f"{stem}.key"], "ca.crt": ca}

    return {
        TOKENS_SECRET: {"tokens.json": json.dumps(tokens), **tokens},
        MQTT_SECRET: {"users.json": json.dumps(mqtt), **mqtt},
        SIGNING_SECRET: {"signing.pub": public_key_path(key).read_text(encoding="utf-8")},
        SERVER_TLS_SECRET: tls_secret("control-plane"),
        CLIENT_TLS_SECRET: tls_secret("client"),
        BROKER_TLS_SECRET: tls_secret("mqtt-broker"),
    }


def config_maps(docs: list[Doc]) -> dict[str, dict[str, str]]:
    return {doc["metadata"]["name"]: doc["data"] for doc in docs if doc["kind"] == "ConfigMap"}
