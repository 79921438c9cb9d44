"""The lean encoder writes exactly what the reference opentelemetry-proto classes decode."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest

from tracing.wire import (
    SpanKind,
    SpanName,
    StatusCode,
    encode_export_request,
    encode_plain_child,
    encode_resource,
    encode_scope,
    encode_span,
    encode_span_parts,
    span_attributes,
)

values = st.one_of(
    st.text(max_size=300),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False),
)


@given(
    trace_id=st.binary(min_size=16, max_size=16),
    span_id=st.binary(min_size=8, max_size=8),
    parent=st.sampled_from([b"", b"\x01" * 8]),
    name=st.text(max_size=200),
    start=st.integers(min_value=0, max_value=2**64 - 1),
    end=st.integers(min_value=0, max_value=2**64 - 1),
    attributes=st.dictionaries(st.text(min_size=1, max_size=40), values, max_size=6),
    status=st.sampled_from(list(StatusCode)),
    message=st.text(max_size=50),
    kind=st.sampled_from(list(SpanKind)),
    trace_state=st.text(max_size=20),
)
def test_spans_round_trip(
    trace_id: bytes,
    span_id: bytes,
    parent: bytes,
    name: str,
    start: int,
    end: int,
    attributes: dict[str, str | bool | int | float],
    status: StatusCode,
    message: str,
    kind: SpanKind,
    trace_state: str,
) -> None:
    span = encode_span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        kind=kind,
        start_ns=start,
        end_ns=end,
        attributes=span_attributes(attributes),
        status=status,
        status_message=message,
        trace_state=trace_state,
    )
    raw = encode_export_request(
        encode_resource({"service.name": "svc", "n": 3}), encode_scope("s", "1.0"), [span] * 2
    )
    request = ExportTraceServiceRequest.FromString(raw)
    (resource_spans,) = request.resource_spans
    assert resource_spans.resource.attributes[0].value.string_value == "svc"
    assert resource_spans.resource.attributes[1].value.int_value == 3
    (scope_spans,) = resource_spans.scope_spans
    assert (scope_spans.scope.name, scope_spans.scope.version) == ("s", "1.0")
    decoded = scope_spans.spans[1]
    assert (decoded.trace_id, decoded.span_id, decoded.parent_span_id) == (trace_id, span_id, parent)
    assert (decoded.name, int(decoded.kind), decoded.trace_state) == (name, int(kind), trace_state)
    assert (decoded.start_time_unix_nano, decoded.end_time_unix_nano) == (start, end)
    assert (int(decoded.status.code), decoded.status.message) == (int(status), message)
    got = {
        kv.key: getattr(kv.value, kv.value.WhichOneof("value") or "string_value") for kv in decoded.attributes
    }
    assert got == attributes


@given(
    st.binary(min_size=16, max_size=16),
    st.integers(0, 2**64 - 1),
    st.integers(0, 2**64 - 1),
    st.text(max_size=30),
)
def test_plain_child_is_the_general_form_without_attributes(
    trace_id: bytes, start: int, end: int, name: str
) -> None:
    span_name = SpanName(name, SpanKind.INTERNAL)
    assert encode_plain_child(trace_id, b"\x02" * 8, b"\x01" * 8, span_name, start, end) == encode_span_parts(
        trace_id, b"\x02" * 8, b"\x01" * 8, span_name, start, end, b"", b""
    )
