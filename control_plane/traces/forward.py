"""Passes every export request on, unchanged, to an external OTLP collector (Jaeger, Tempo,
the OpenTelemetry Collector) from one background task.

The queue is bounded (``max_requests``); when the collector is slow or away the oldest
requests are dropped and counted, so forwarding can never slow ingestion or grow memory.
Each call has a deadline; retryable failures back off and retry.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import time
from types import TracebackType

import grpc
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceResponse

from tracing.exporter import EXPORT_METHOD, RETRYABLE, open_export_channel
from tracing.settings import ExportSettings

logger = logging.getLogger(__name__)

MAX_BACKOFF_S = 5.0
LOG_EVERY_S = 30.0
CLOSE_DEADLINE_S = 1.0  # a stopping process must not wait long for a collector


class OtlpForwarder:
    """A bounded queue of serialized ExportTraceServiceRequests and the task that sends them."""

    def __init__(self, settings: ExportSettings, *, max_requests: int = 1024) -> None:
        self.settings = settings
        self._queue: collections.deque[bytes] = collections.deque(maxlen=max_requests)
        self._wake = asyncio.Event()
        self._closing = False
        self._closed = asyncio.Event()
        self._channel: grpc.aio.Channel | None = None
        self._task: asyncio.Task[None] | None = None
        self._last_log = 0.0
        self.forwarded = 0
        self.dropped = 0

    def submit(self, request: bytes) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(request)
        self._wake.set()

    async def __aenter__(self) -> OtlpForwarder:
        self._channel = open_export_channel(self.settings)
        self._task = asyncio.create_task(self._run(), name=f"otlp-forward {self.settings.target}")
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
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                request = self._queue.popleft()
                if not await self._send(call, request):
                    break
            if self._closing:
                self.dropped += len(self._queue)
                return

    async def _send(
        self, call: grpc.aio.UnaryUnaryMultiCallable[bytes, ExportTraceServiceResponse], request: bytes
    ) -> bool:
        """Send one request (retrying while worthwhile); False when closing cut it short."""
        backoff = 0.2
        while True:
            timeout = CLOSE_DEADLINE_S if self._closing else self.settings.timeout_s
            try:
                await call(request, metadata=self.settings.headers, timeout=timeout)
            except grpc.aio.AioRpcError as exc:
                if exc.code() not in RETRYABLE or self._closing:
                    self.dropped += 1
                    self._log(
                        f"forwarding to {self.settings.target} failed: {exc.code().name}: {exc.details()}"
                    )
                    return not self._closing
                self._log(f"forwarding to {self.settings.target} failed, retrying: {exc.code().name}")
                await self._pause(backoff)
                backoff = min(backoff * 2, MAX_BACKOFF_S)
                continue
            self.forwarded += 1
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
