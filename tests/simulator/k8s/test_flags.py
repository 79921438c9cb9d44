"""Every rendered container runs a console script of the distribution with flags and
environment variables that script really has (its own ``--help`` says so)."""

from __future__ import annotations

import functools
import re
import subprocess
import sys
import tomllib
from pathlib import Path

from simulator.k8s.options import RenderOptions
from tests.simulator.k8s.manifests import REPO_ROOT, Doc, documents, pod_specs, rendered

# Set for the interpreter or the OpenTelemetry SDK, not flags of ours.
FOREIGN_ENV = {"PYTHONUNBUFFERED", "OTEL_EXPORTER_OTLP_HEADERS"}
VARIANT = RenderOptions(otlp_endpoint="http://collector:4317", external_mqtt="mqtt://broker:1883")


def console_scripts() -> dict[str, str]:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    scripts: dict[str, str] = config["project"]["scripts"]
    return scripts


@functools.cache
def help_text(script: str) -> str:
    """``SCRIPT --help`` run as the installed console script, whitespace folded."""
    path = Path(sys.executable).parent / script
    result = subprocess.run([str(path), "--help"], capture_output=True, text=True, timeout=60, check=True)
    return " ".join(result.stdout.split())


def _containers() -> list[Doc]:
    found = []
    for options in (RenderOptions(), VARIANT):
        for _name, spec in pod_specs(documents(rendered(options))):
            found += spec["containers"]
    return found


def test_every_container_runs_a_console_script_of_the_distribution() -> None:
    scripts = console_scripts()
    commands = {container["command"][0] for container in _containers()}
    assert commands == {"control-plane", "edge-node", "edge-router", "iot-gateway", "mqtt-broker"}
    assert commands <= set(scripts)


def test_every_flag_and_environment_variable_exists_in_the_process() -> None:
    for container in _containers():
        script = container["command"][0]
        text = help_text(script)
        known_flags = set(re.findall(r"--[a-z0-9][a-z0-9-]*", text))
        flags = {arg for arg in container["args"] if arg.startswith("--")}
        assert flags - known_flags == set(), f"{script} has no such flags"
        for env in container["env"]:
            if env["name"] not in FOREIGN_ENV:
                assert f"[env: {env['name']}]" in text, f"{script} reads no {env['name']}"


def test_choices_are_ones_the_processes_accept() -> None:
    chosen = {("edge-router", "--wan"): "off", ("mqtt-broker", "--engine"): "mosquitto"}
    for container in _containers():
        args = container["args"]
        for (script, flag), value in chosen.items():
            if container["command"][0] == script:
                assert args[args.index(flag) + 1] == value
                assert re.search(rf"{flag} \{{[^}}]*\b{value}\b", help_text(script))
