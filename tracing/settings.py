"""Where spans go and how many: exporter settings from flags and the standard OTEL_* environment.

Precedence, as in the OpenTelemetry SDKs: ``OTEL_SDK_DISABLED=true`` or
``OTEL_TRACES_EXPORTER=none`` turn export off; ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT``, then
``OTEL_EXPORTER_OTLP_ENDPOINT`` name the collector (``http://`` plain, ``https://`` TLS,
a bare ``host:port`` plain), with ``OTEL_EXPORTER_OTLP[_TRACES]_HEADERS`` (``k=v,k2=v2``,
URL-encoded values) and, for TLS, ``OTEL_EXPORTER_OTLP_CERTIFICATE`` (the CA) and
``OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE``/``_CLIENT_KEY`` (mutual TLS); otherwise the
process's default, the control plane, which gets the process's bearer token and its
``--control-plane-*`` TLS files. The token is never sent to any other endpoint. Pure code.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from runtime.tls import ClientTlsFiles
from tracing.errors import ExportSettingsError

TRUE_VALUES = frozenset({"1", "true", "yes", "on"})
MAX_PORT = 65535


@dataclass(frozen=True, slots=True, kw_only=True)
class ExportSettings:
    """An OTLP/gRPC destination and the batching around it."""

    target: str
    tls: bool = False
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None
    server_name: str | None = None
    headers: tuple[tuple[str, str], ...] = ()
    batch_size: int = 512
    max_queue_spans: int = 16_384
    interval_s: float = 1.0
    timeout_s: float = 10.0

    def __post_init__(self) -> None:
        host, _, port = self.target.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= MAX_PORT:
            raise ExportSettingsError(setting="endpoint", reason=f"{self.target!r} is not host:port")
        if self.batch_size < 1 or self.max_queue_spans < self.batch_size:
            raise ExportSettingsError(setting="batch", reason="need 1 <= batch size <= queue size")
        if self.interval_s <= 0 or self.timeout_s <= 0:
            raise ExportSettingsError(setting="interval/timeout", reason="must be positive")
        if (self.client_cert_file is None) != (self.client_key_file is None):
            raise ExportSettingsError(
                setting="OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE/OTEL_EXPORTER_OTLP_CLIENT_KEY",
                reason="give both a client certificate and its key, or neither",
            )


def parse_endpoint(value: str, *, setting: str = "OTEL_EXPORTER_OTLP_ENDPOINT") -> tuple[str, bool]:
    """(host:port, tls) from an OTLP endpoint URL or a bare host:port."""
    text = value.strip()
    if "://" not in text:
        host, _, port = text.rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) <= MAX_PORT:
            raise ExportSettingsError(setting=setting, reason=f"{value!r} is neither host:port nor a URL")
        return text, False
    try:
        url = urllib.parse.urlsplit(text)
        url_port = url.port
    except ValueError as exc:
        raise ExportSettingsError(setting=setting, reason=f"{value!r}: {exc}") from exc
    if url.scheme not in {"http", "https"} or not url.hostname:
        raise ExportSettingsError(setting=setting, reason=f"{value!r} is not an http:// or https:// URL")
    tls = url.scheme == "https"
    host = f"[{url.hostname}]" if ":" in url.hostname else url.hostname
    return f"{host}:{url_port or (443 if tls else 4317)}", tls


def parse_headers(value: str, *, setting: str) -> tuple[tuple[str, str], ...]:
    """``k=v,k2=v2`` (W3C baggage-like, values URL-encoded) as gRPC metadata."""
    headers = []
    for item in value.split(","):
        if not item.strip():
            continue
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ExportSettingsError(setting=setting, reason=f"{item.strip()!r} is not key=value")
        headers.append((key.strip().lower(), urllib.parse.unquote(raw.strip())))
    return tuple(headers)


def sample_ratio_from(environ: Mapping[str, str], default: float) -> float:
    """The ratio OTEL_TRACES_SAMPLER/OTEL_TRACES_SAMPLER_ARG ask for (``default`` when unset)."""
    sampler = environ.get("OTEL_TRACES_SAMPLER", "").strip().lower()
    if sampler in {"always_off", "parentbased_always_off"}:
        return 0.0
    if sampler in {"always_on", "parentbased_always_on"}:
        return 1.0
    raw = environ.get("OTEL_TRACES_SAMPLER_ARG")
    if raw is None or not raw.strip():
        return default
    try:
        return float(raw)
    except ValueError as exc:
        raise ExportSettingsError(
            setting="OTEL_TRACES_SAMPLER_ARG", reason=f"{raw!r} is not a number"
        ) from exc


def export_settings(
    environ: Mapping[str, str],
    *,
    control_plane: str | None,
    token: str | None,
    control_plane_tls: ClientTlsFiles | None = None,
) -> ExportSettings | None:
    """Where this process exports, or None when export is off or there is nowhere to send."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() in TRUE_VALUES:
        return None
    if environ.get("OTEL_TRACES_EXPORTER", "otlp").strip().lower() == "none":
        return None
    for endpoint_var, headers_var in (
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_HEADERS"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_HEADERS"),
    ):
        endpoint = environ.get(endpoint_var, "").strip()
        if endpoint:
            target, tls = parse_endpoint(endpoint, setting=endpoint_var)
            headers_raw = environ.get(headers_var) or environ.get("OTEL_EXPORTER_OTLP_HEADERS", "")
            insecure = environ.get("OTEL_EXPORTER_OTLP_INSECURE", "").strip().lower() in TRUE_VALUES
            return ExportSettings(
                target=target,
                tls=tls and not insecure,
                ca_file=_path(environ, "OTEL_EXPORTER_OTLP_CERTIFICATE"),
                client_cert_file=_path(environ, "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE"),
                client_key_file=_path(environ, "OTEL_EXPORTER_OTLP_CLIENT_KEY"),
                headers=parse_headers(headers_raw, setting=headers_var),
            )
    if control_plane is None:
        return None
    headers = (("authorization", f"Bearer {token}"),) if token else ()
    if control_plane_tls is None:
        return ExportSettings(target=control_plane, headers=headers)
    return ExportSettings(
        target=control_plane,
        headers=headers,
        tls=True,
        ca_file=control_plane_tls.ca,
        client_cert_file=control_plane_tls.cert,
        client_key_file=control_plane_tls.key,
        server_name=control_plane_tls.server_name,
    )


def _path(environ: Mapping[str, str], name: str) -> Path | None:
    value = environ.get(name, "").strip()
    return Path(value) if value else None


def resource_attributes(environ: Mapping[str, str], base: Mapping[str, str]) -> dict[str, str]:
    """``base`` overlaid with ``OTEL_RESOURCE_ATTRIBUTES`` and ``OTEL_SERVICE_NAME`` (which
    win, as the specification says); empty values are left out."""
    result = {key: value for key, value in base.items() if value}
    extra = parse_headers(environ.get("OTEL_RESOURCE_ATTRIBUTES", ""), setting="OTEL_RESOURCE_ATTRIBUTES")
    result.update(extra)
    service = environ.get("OTEL_SERVICE_NAME", "").strip()
    if service:
        result["service.name"] = service
    return result


def edgecdn_version() -> str:
    """The installed EdgeCDN version, for ``service.version`` and instrumentation scopes."""
    try:
        return metadata.version("edgecdn")
    except metadata.PackageNotFoundError:
        return "0"
