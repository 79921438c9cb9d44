"""Spans as the store keeps them, decoded from OTLP ``ResourceSpans``. Pure code.

Only what indexes and statistics need is pulled out of each span (a few attribute reads);
the OTLP ``Span`` message itself is kept for ``GetTrace``, which renders it lazily.
Spans with malformed ids are rejected and counted, as OTLP partial success asks.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.trace.v1.trace_pb2 import ResourceSpans, Span, Status

SERVER_KIND = Span.SPAN_KIND_SERVER
ERROR_STATUS = Status.STATUS_CODE_ERROR
REGION_KEY = "edgecdn.region"
APP_NAME_KEY = "edgecdn.app.name"
APP_VERSION_KEY = "edgecdn.app.version"
ROUTE_KEY = "http.route"
CACHE_KEY = "edgecdn.cache"  # the edge node's cache outcome (edge_node.telemetry.K_CACHE)
HTTP_STATUS_KEYS = ("http.response.status_code", "http.status_code")
_WANTED = frozenset({REGION_KEY, APP_NAME_KEY, APP_VERSION_KEY, ROUTE_KEY, CACHE_KEY, *HTTP_STATUS_KEYS})
HTTP_SERVER_ERROR = 500


class SpanRecord:
    """One stored span: the fields queries need, plus the OTLP message."""

    __slots__ = (
        "app_name",
        "app_version",
        "cache",
        "end_ns",
        "error",
        "http_status",
        "kind",
        "message",
        "parent_span_id",
        "region",
        "resource",
        "route",
        "service",
        "span_id",
        "start_ns",
        "trace_id",
    )

    def __init__(self, message: Span, resource: ResourceInfo) -> None:
        self.message = message
        self.resource = resource
        self.trace_id: bytes = message.trace_id
        self.span_id: bytes = message.span_id
        self.parent_span_id: bytes = message.parent_span_id
        self.kind: int = message.kind
        self.start_ns: int = message.start_time_unix_nano
        self.end_ns: int = max(message.end_time_unix_nano, self.start_ns)
        self.service = resource.service
        self.region = resource.region
        self.app_name = resource.app_name
        self.app_version = resource.app_version
        self.route = ""
        self.http_status = 0
        self.cache = ""  # HIT, MISS, STALE, REVALIDATED, BYPASS; "" when the cache was not involved
        for kv in message.attributes:
            if kv.key in _WANTED:
                self._take(kv)
        self.error = message.status.code == ERROR_STATUS or self.http_status >= HTTP_SERVER_ERROR

    def _take(self, kv: KeyValue) -> None:
        key, value = kv.key, kv.value
        if key in HTTP_STATUS_KEYS:
            self.http_status = value.int_value or _int(value.string_value)
        elif key == ROUTE_KEY:
            self.route = value.string_value
        elif key == CACHE_KEY:
            self.cache = value.string_value
        elif key == REGION_KEY:
            self.region = value.string_value
        elif key == APP_NAME_KEY:
            self.app_name = value.string_value
        else:
            self.app_version = value.string_value

    @property
    def duration_ns(self) -> int:
        return self.end_ns - self.start_ns

    @property
    def is_request(self) -> bool:
        """A SERVER span of an app request: what statistics are made of."""
        return self.kind == SERVER_KIND and bool(self.app_version)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourceInfo:
    """The resource attributes every span of one ResourceSpans shares."""

    service: str
    region: str
    app_name: str
    app_version: str
    attributes: tuple[tuple[str, str], ...]


def _int(text: str) -> int:
    return int(text) if text.isdigit() else 0


def render_value(value: AnyValue) -> str:  # noqa: PLR0911 - one per AnyValue kind
    kind = value.WhichOneof("value")
    if kind is None:
        return ""
    if kind == "string_value":
        return value.string_value
    if kind == "bool_value":
        return "true" if value.bool_value else "false"
    if kind in {"int_value", "double_value"}:
        return str(getattr(value, kind))
    if kind == "bytes_value":
        return value.bytes_value.hex()
    if kind == "array_value":
        return "[" + ", ".join(render_value(v) for v in value.array_value.values) + "]"
    return "{" + ", ".join(f"{kv.key}: {render_value(kv.value)}" for kv in value.kvlist_value.values) + "}"


def resource_info(resource_spans: ResourceSpans) -> ResourceInfo:
    attrs = {kv.key: render_value(kv.value) for kv in resource_spans.resource.attributes}
    return ResourceInfo(
        service=attrs.get("service.name", "unknown_service"),
        region=attrs.get(REGION_KEY, ""),
        app_name=attrs.get(APP_NAME_KEY, ""),
        app_version=attrs.get(APP_VERSION_KEY, ""),
        attributes=tuple(sorted(attrs.items())),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Decoded:
    """The valid spans of one export request and how many were rejected (and why, first)."""

    spans: list[SpanRecord]
    rejected: int
    first_error: str


def decode_resource_spans(resource_spans_list: Iterable[ResourceSpans]) -> Decoded:
    spans: list[SpanRecord] = []
    rejected = 0
    first_error = ""
    for resource_spans in resource_spans_list:
        info = resource_info(resource_spans)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                problem = _problem(span)
                if problem:
                    rejected += 1
                    first_error = first_error or problem
                    continue
                spans.append(SpanRecord(span, info))
    return Decoded(spans=spans, rejected=rejected, first_error=first_error)


def _problem(span: Span) -> str:
    if len(span.trace_id) != 16 or not any(span.trace_id):
        return f"span {span.name!r}: trace_id must be 16 bytes, not all zero"
    if len(span.span_id) != 8 or not any(span.span_id):
        return f"span {span.name!r}: span_id must be 8 bytes, not all zero"
    if span.parent_span_id and len(span.parent_span_id) != 8:
        return f"span {span.name!r}: parent_span_id must be empty or 8 bytes"
    return ""
