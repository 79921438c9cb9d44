"""An async OTLP/gRPC batch exporter for spans encoded by ``tracing.wire``.

``add`` is the hot path: a list append (or a dropped-span count when the queue is full,
so a slow or absent collector costs memory bounded by ``max_queue_spans`` and nothing
else). A named task sends a batch when one is full or ``interval_s`` has passed, each call
with a deadline; retryable failures back off and retry the same batch, others drop it
with a (rate-limited) log line. Closing flushes what is queued within one deadline.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from pathlib import Path
from types import TracebackType

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracing.settings import ExportSettings
from tracing.wire import encode_export_request

logger = logging.getLogger(__name__)

EXPORT_METHOD = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
RETRYABLE = frozenset(
    {
        grpc.StatusCode.UNAVAILABLE,
        grpc.StatusCode.DEADLINE_EXCEEDED,
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        grpc.StatusCode.ABORTED,
        grpc.StatusCode.CANCELLED,
    }
)
MAX_BACKOFF_S = 5.0
LOG_EVERY_S = 30.0
CLOSE_DEADLINE_S = 1.0  # a stopping process must not wait long for a collector


def export_credentials(settings: ExportSettings) -> grpc.ChannelCredentials:
    """TLS credentials for a ``tls`` destination: its CA (else the system's roots) and, for
    mutual TLS, our certificate and key."""

    def read(path: Path | None) -> bytes | None:
        return None if path is None else path.read_bytes()

    return grpc.ssl_channel_credentials(
        root_certificates=read(settings.ca_file),
        private_key=read(settings.client_key_file),
        certificate_chain=read(settings.client_cert_file),
    )


def open_export_channel(settings: ExportSettings) -> grpc.aio.Channel:
    options: list[tuple[str, int | str]] = [
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_permit_without_calls", 0),
    ]
    if not settings.tls:
        return grpc.aio.insecure_channel(settings.target, options=options)
    if settings.server_name is not None:
        options.append(("grpc.ssl_target_name_override", settings.server_name))
    return grpc.aio.secure_channel(settings.target, export_credentials(settings), options=options)


class OtlpBatchExporter:
    """Queues encoded spans and exports them in batches from one background task."""

    def __init__(self, settings: ExportSettings, *, resource: bytes, scope: bytes) -> None:
        self._settings = settings
        self._resource = resource
        self._scope = scope
        self._pending: list[bytes] = []
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._channel: grpc.aio.Channel | None = None
        self._last_log = 0.0
        self.dropped = 0
        self.exported = 0

    def add(self, span: bytes) -> None:
        pending = self._pending
        if len(pending) >= self._settings.max_queue_spans:
            self.dropped += 1
            return
        pending.append(span)
        if len(pending) == self._settings.batch_size:
            self._wake.set()

    async def __aenter__(self) -> OtlpBatchExporter:
        self._channel = open_export_channel(self._settings)
        self._task = asyncio.create_task(self._run(), name=f"otlp-exporter {self._settings.target}")
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._closing = True
        self._closed.set()
        self._wake.set()
        if self._task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(self._task), CLOSE_DEADLINE_S + 1)
            except TimeoutError:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._channel is not None:
            await self._channel.close()

    async def _run(self) -> None:
        assert self._channel is not None
        call: grpc.aio.UnaryUnaryMultiCallable[bytes, ExportTraceServiceResponse] = self._channel.unary_unary(
            EXPORT_METHOD,
            request_serializer=None,
            response_deserializer=ExportTraceServiceResponse.FromString,
        )
        while True:
            if not self._closing and len(self._pending) < self._settings.batch_size:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._settings.interval_s)
            self._wake.clear()
            while self._pending:
                batch = self._pending[: self._settings.batch_size]
                del self._pending[: len(batch)]
                if not await self._send(call, batch) and self._closing:
                    break  # the collector is away: do not hold the shutdown up
            if self._closing:
                if self._pending:
                    self.dropped += len(self._pending)
                    self._log(f"dropped {len(self._pending)} spans at shutdown")
                return

    async def _send(
        self, call: grpc.aio.UnaryUnaryMultiCallable[bytes, ExportTraceServiceResponse], batch: list[bytes]
    ) -> bool:
        request = encode_export_request(self._resource, self._scope, batch)
        backoff = 0.2
        deadline = self._settings.timeout_s if not self._closing else CLOSE_DEADLINE_S
        while True:
            try:
                response = await call(request, metadata=self._settings.headers, timeout=deadline)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or self._closing:
                    self._log(f"export to {self._settings.target} failed: {exc.code().name}: {exc.details()}")
                    self.dropped += len(batch)
                    return False
                self._log(f"export to {self._settings.target} failed, retrying: {exc.code().name}")
                if len(self._pending) >= self._settings.max_queue_spans - len(batch):
                    self.dropped += len(batch)  # newer spans are worth more than a stuck batch
                    return False
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            rejected = response.partial_success.rejected_spans
            if rejected:
                self._log(f"collector rejected {rejected} spans: {response.partial_success.error_message}")
            self.exported += len(batch) - rejected
            return True

    async def _pause(self, seconds: float) -> None:
        """Back off, but wake at once when closing."""
        if not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closed.wait(), seconds)

    def _log(self, message: str) -> None:
        now = time.monotonic()
        if now - self._last_log >= LOG_EVERY_S:
            self._last_log = now
            logger.warning("%s (dropped so far: %d)", message, self.dropped)
