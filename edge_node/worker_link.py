"""The wire between an edge node's supervisor and its workers (``edge-node --workers N``).

One socketpair per worker, inherited by the worker process: length-prefixed JSON messages
both ways. The supervisor holds the node's one control-plane session and asks every
worker to ``apply`` an assignment (the module blobs are in the node's module store on
disk, where the session put them) or to ``purge`` its cache, and waits for each reply.
Each worker pushes its ``stats`` twice a second: the heartbeat figures and load since its
last push (differences, so a worker that dies loses at most half a second of them) and
its metric samples; the supervisor answers with the sum of the other workers' samples,
which the worker adds to its own on ``/metrics``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from cpclient import ApplyError
from httpcache.model import PurgeSelector
from protos.edgecdn.v1 import nodes_pb2

logger = logging.getLogger(__name__)

_LENGTH = struct.Struct(">I")
MAX_MESSAGE_BYTES = 64 * 1024 * 1024
STATS_INTERVAL_S = 0.5

Message = dict[str, Any]


class LinkClosedError(ConnectionError):
    """The other end of the link is gone."""


async def read_message(reader: asyncio.StreamReader) -> Message:
    try:
        head = await reader.readexactly(_LENGTH.size)
        (length,) = _LENGTH.unpack(head)
        if length > MAX_MESSAGE_BYTES:
            raise LinkClosedError(f"a message of {length} bytes on the worker link")
        message = json.loads(await reader.readexactly(length))
    except (asyncio.IncompleteReadError, ConnectionError) as exc:
        raise LinkClosedError("the worker link closed") from exc
    if not isinstance(message, dict):
        raise LinkClosedError("a message on the worker link is not a JSON object")
    return message


def write_message(writer: asyncio.StreamWriter, message: Message) -> None:
    data = json.dumps(message, separators=(",", ":")).encode()
    writer.write(_LENGTH.pack(len(data)) + data)


def encode_purge(selector: PurgeSelector, soft: bool) -> Message:
    return {
        "urls": list(selector.urls),
        "prefixes": list(selector.prefixes),
        "tags": list(selector.tags),
        "everything": selector.everything,
        "soft": soft,
    }


def decode_purge(message: Message) -> tuple[PurgeSelector, bool]:
    selector = PurgeSelector(
        urls=tuple(message["urls"]),
        prefixes=tuple(message["prefixes"]),
        tags=tuple(message["tags"]),
        everything=bool(message["everything"]),
    )
    return selector, bool(message["soft"])


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStats:
    """One push of a worker: figures and load since its last push, and its metric samples."""

    heartbeat: nodes_pb2.Heartbeat  # figures and spans dropped since the last push
    requests: int  # answered since the last push
    errors: int  # of which 5xx
    in_flight: int  # now
    samples: list[list[Any]]  # edge_node.worker_stats.Sample rows

    def to_message(self) -> Message:
        return {
            "kind": "stats",
            "heartbeat": base64.b64encode(self.heartbeat.SerializeToString()).decode(),
            "requests": self.requests,
            "errors": self.errors,
            "in_flight": self.in_flight,
            "samples": self.samples,
        }

    @classmethod
    def from_message(cls, message: Message) -> WorkerStats:
        return cls(
            heartbeat=nodes_pb2.Heartbeat.FromString(base64.b64decode(message["heartbeat"])),
            requests=int(message["requests"]),
            errors=int(message["errors"]),
            in_flight=int(message["in_flight"]),
            samples=list(message["samples"]),
        )


class WorkerSide:
    """A worker's end: answers the supervisor's requests and pushes its stats."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        apply: Callable[[nodes_pb2.Assignment], Awaitable[None]],
        purge: Callable[[PurgeSelector, bool], Awaitable[int]],
        stats: Callable[[], WorkerStats],
    ) -> None:
        self._reader = reader
        self._writer = writer
        self._apply = apply
        self._purge = purge
        self._stats = stats
        self.others: list[list[Any]] = []  # the other workers' samples, summed (worker_stats)

    def ready(self, url: str) -> None:
        write_message(self._writer, {"kind": "ready", "url": url})

    async def run(self) -> None:
        """Serve the supervisor until the link closes (the supervisor is gone: so is the worker)."""
        pusher = asyncio.create_task(self._push_stats(), name="edge-worker-stats")
        try:
            while True:
                message = await read_message(self._reader)
                kind = message.get("kind")
                if kind == "others":
                    self.others = list(message["samples"])
                elif kind in ("apply", "purge"):
                    reply = await self._handle(message)
                    write_message(self._writer, {"kind": "reply", "id": message["id"], **reply})
        finally:
            pusher.cancel()

    async def _handle(self, message: Message) -> Message:
        try:
            if message["kind"] == "apply":
                assignment = nodes_pb2.Assignment.FromString(base64.b64decode(message["assignment"]))
                await self._apply(assignment)
                return {"ok": True}
            selector, soft = decode_purge(message)
            return {"ok": True, "removed": await self._purge(selector, soft)}
        except ApplyError as exc:
            return {"ok": False, "code": exc.code, "reason": exc.reason, "sha256": exc.sha256}
        except Exception as exc:
            logger.exception("worker: %s failed", message.get("kind"))
            return {"ok": False, "code": "worker_failed", "reason": repr(exc), "sha256": ""}

    async def _push_stats(self) -> None:
        while True:
            await asyncio.sleep(STATS_INTERVAL_S)
            write_message(self._writer, self._stats().to_message())
            await self._writer.drain()


class SupervisorSide:
    """The supervisor's end of one worker's link: requests with replies, and its last stats."""

    def __init__(self, index: int, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.index = index
        self._reader = reader
        self._writer = writer
        self._next_id = 0
        self._replies: dict[int, asyncio.Future[Message]] = {}
        self.ready: asyncio.Future[str] = asyncio.get_running_loop().create_future()

    async def run(self, on_stats: Callable[[int, WorkerStats], None]) -> None:
        """Read the worker's messages until its link closes; pending requests then fail."""
        try:
            while True:
                message = await read_message(self._reader)
                kind = message.get("kind")
                if kind == "ready" and not self.ready.done():
                    self.ready.set_result(str(message["url"]))
                elif kind == "stats":
                    on_stats(self.index, WorkerStats.from_message(message))
                elif kind == "reply":
                    waiting = self._replies.pop(int(message["id"]), None)
                    if waiting is not None and not waiting.done():
                        waiting.set_result(message)
        except LinkClosedError as exc:
            for waiting in self._replies.values():
                if not waiting.done():
                    waiting.set_exception(exc)
            if not self.ready.done():
                self.ready.set_exception(exc)
        finally:
            self._writer.close()

    async def apply(self, assignment: nodes_pb2.Assignment) -> None:
        encoded = base64.b64encode(assignment.SerializeToString()).decode()
        reply = await self._request({"kind": "apply", "assignment": encoded})
        if not reply.get("ok"):
            raise ApplyError(
                code=str(reply.get("code", "worker_failed")),
                reason=f"worker {self.index}: {reply.get('reason', '')}",
                sha256=str(reply.get("sha256", "")),
            )

    async def purge(self, selector: PurgeSelector, soft: bool) -> int:
        reply = await self._request({"kind": "purge", **encode_purge(selector, soft)})
        return int(reply.get("removed", 0)) if reply.get("ok") else 0

    def send_others(self, samples: list[list[Any]]) -> None:
        write_message(self._writer, {"kind": "others", "samples": samples})

    async def _request(self, message: Message) -> Message:
        self._next_id += 1
        waiting: asyncio.Future[Message] = asyncio.get_running_loop().create_future()
        self._replies[self._next_id] = waiting
        write_message(self._writer, {**message, "id": self._next_id})
        await self._writer.drain()
        return await waiting
