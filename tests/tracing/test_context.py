"""W3C traceparent parsing, sampling decisions, and the OTEL_* settings."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace.sampling import Decision, TraceIdRatioBased

from tracing.context import format_traceparent, parse_traceparent
from tracing.errors import ExportSettingsError
from tracing.sampling import ParentBasedRatioSampler
from tracing.settings import export_settings, parse_endpoint, resource_attributes

VALID = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def test_valid_and_invalid_traceparents() -> None:
    parent = parse_traceparent(VALID, "k=v")
    assert parent is not None
    assert parent.trace_id.hex() == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert parent.span_id.hex() == "00f067aa0ba902b7"
    assert parent.sampled
    assert parent.tracestate == "k=v"
    assert parse_traceparent(VALID[:-2] + "00") is not None
    assert not parse_traceparent(VALID[:-2] + "00").sampled  # type: ignore[union-attr]
    for bad in (
        "",
        "garbage",
        VALID.upper(),
        "ff" + VALID[2:],
        "00-" + "0" * 32 + VALID[35:],
        VALID[:36] + "0" * 16 + "-01",
        VALID + "-extra",  # version 00 has exactly four fields
    ):
        assert parse_traceparent(bad) is None, bad
    assert parse_traceparent("01" + VALID[2:] + "-future") is not None  # later versions: read the prefix


@given(st.binary(min_size=16, max_size=16), st.binary(min_size=8, max_size=8), st.booleans())
def test_format_parse_round_trip(trace_id: bytes, span_id: bytes, sampled: bool) -> None:
    parsed = parse_traceparent(format_traceparent(trace_id, span_id, sampled=sampled))
    if not any(trace_id) or not any(span_id):
        assert parsed is None
    else:
        assert parsed is not None
        assert (parsed.trace_id, parsed.span_id, parsed.sampled) == (trace_id, span_id, sampled)


@given(st.integers(min_value=1, max_value=2**128 - 1), st.sampled_from([0.0, 0.001, 0.25, 0.5, 0.999, 1.0]))
def test_ratio_sampling_agrees_with_the_sdk(trace_id: int, ratio: float) -> None:
    ours = ParentBasedRatioSampler(ratio=ratio).should_sample(trace_id.to_bytes(16, "big"), None)
    sdk = TraceIdRatioBased(ratio).should_sample(None, trace_id, "x").decision == Decision.RECORD_AND_SAMPLE
    assert ours == sdk


def test_parent_decision_wins() -> None:
    parent = parse_traceparent(VALID)
    assert ParentBasedRatioSampler(ratio=0.0).should_sample(b"\x00" * 16, parent)
    unsampled = parse_traceparent(VALID[:-2] + "00")
    assert not ParentBasedRatioSampler(ratio=1.0).should_sample(b"\x00" * 16, unsampled)


def test_export_settings_from_environment() -> None:
    assert export_settings({}, control_plane=None, token=None) is None
    default = export_settings({}, control_plane="127.0.0.1:7000", token="secret-token")
    assert default is not None
    assert default.target == "127.0.0.1:7000"
    assert default.headers == (("authorization", "Bearer secret-token"),)
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "https://collector:4317",
        "OTEL_EXPORTER_OTLP_HEADERS": "x-key=a%20b",
    }
    external = export_settings(env, control_plane="127.0.0.1:7000", token="secret-token")
    assert external is not None
    assert (external.target, external.tls, external.headers) == ("collector:4317", True, (("x-key", "a b"),))
    assert export_settings({"OTEL_SDK_DISABLED": "true"}, control_plane="127.0.0.1:7000", token="t") is None
    assert parse_endpoint("http://[::1]:4317") == ("[::1]:4317", False)
    with pytest.raises(ExportSettingsError):
        export_settings({"OTEL_EXPORTER_OTLP_ENDPOINT": "ftp://x"}, control_plane=None, token=None)
    attrs = resource_attributes(
        {"OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=lab", "OTEL_SERVICE_NAME": "edge-x"},
        {"service.name": "edge-node", "empty": ""},
    )
    assert attrs == {"service.name": "edge-x", "deployment.environment": "lab"}


def test_endpoint_errors_name_the_setting() -> None:
    for bad in ("nohost", "host:notaport", "http://", "http://host:99999", "ftp://host:1"):
        with pytest.raises(ExportSettingsError) as caught:
            parse_endpoint(bad, setting="--otlp-forward")
        assert caught.value.setting == "--otlp-forward"
    assert parse_endpoint("https://collector") == ("collector:443", True)
    assert parse_endpoint("http://collector") == ("collector:4317", False)
    assert parse_endpoint("collector:4317") == ("collector:4317", False)
