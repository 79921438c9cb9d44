"""Span attribute keys every EdgeCDN process uses, pre-encoded once (``tracing.wire``).

OpenTelemetry semantic-convention names where one exists (``http.*``, ``url.*``,
``client.*``, ``error.type``), ``edgecdn.*`` for our own facts.
"""

from __future__ import annotations

from tracing.wire import AttributeKey

HTTP_METHOD = AttributeKey("http.request.method")
HTTP_STATUS = AttributeKey("http.response.status_code")
URL_PATH = AttributeKey("url.path")
URL_FULL = AttributeKey("url.full")
CLIENT_ADDRESS = AttributeKey("client.address")
CLIENT_COUNTRY = AttributeKey("edgecdn.client.country")
ERROR_TYPE = AttributeKey("error.type")
