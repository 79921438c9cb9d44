"""tracing.settings: TLS to the collector, from the OTEL_* variables or the process's control-plane flags."""

from __future__ import annotations

from pathlib import Path

import pytest

from runtime.tls import ClientTlsFiles
from tracing.errors import ExportSettingsError
from tracing.settings import export_settings


def test_spans_to_the_control_plane_go_over_its_tls_with_the_token() -> None:
    files = ClientTlsFiles(ca=Path("ca.crt"), cert=Path("c.crt"), key=Path("c.key"), server_name="cp.svc")
    settings = export_settings({}, control_plane="cp:7000", token="t0ken", control_plane_tls=files)
    assert settings is not None
    assert settings.target == "cp:7000"
    assert settings.tls
    assert (settings.ca_file, settings.client_cert_file, settings.client_key_file) == files_paths(files)
    assert settings.server_name == "cp.svc"
    assert settings.headers == (("authorization", "Bearer t0ken"),)
    plain = export_settings({}, control_plane="cp:7000", token="t0ken")
    assert plain is not None
    assert not plain.tls


def files_paths(files: ClientTlsFiles) -> tuple[Path | None, Path | None, Path | None]:
    return files.ca, files.cert, files.key


def test_a_collector_named_by_the_environment_gets_neither_the_token_nor_the_control_plane_tls() -> None:
    files = ClientTlsFiles(ca=Path("ca.crt"), cert=Path("c.crt"), key=Path("c.key"))
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/otel/ca.pem",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/etc/otel/client.pem",
        "OTEL_EXPORTER_OTLP_CLIENT_KEY": "/etc/otel/client.key",
    }
    settings = export_settings(environ, control_plane="cp:7000", token="t0ken", control_plane_tls=files)
    assert settings is not None
    assert settings.target == "collector:4317"
    assert settings.tls
    assert settings.ca_file == Path("/etc/otel/ca.pem")
    assert settings.client_cert_file == Path("/etc/otel/client.pem")
    assert settings.client_key_file == Path("/etc/otel/client.key")
    assert settings.headers == ()


def test_a_client_certificate_without_its_key_is_refused() -> None:
    environ = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317",
        "OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE": "/etc/otel/client.pem",
    }
    with pytest.raises(ExportSettingsError, match="give both a client certificate and its key"):
        export_settings(environ, control_plane=None, token=None)
