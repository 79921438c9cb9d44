"""The adapter between the fault decisions and the running links: sets, heals and expires
faults in the ``FaultBook``, resets the connections a partition cuts, logs every change
with its link and reason, and rewrites the state file after each one.

Expiry is enforced twice: lazily (``FaultBook.active`` ignores an expired fault, so a
late timer never lets a fault outlive its ``for_s``) and by a timer task that removes,
logs and persists each expired fault promptly.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from faultrelay.clock import Clock
from faultrelay.faults import Fault, FaultBook, FaultRequest
from faultrelay.relay import LinkRelay
from faultrelay.state import FaultStore

logger = logging.getLogger(__name__)

_MIN_TIMER_S = 0.001  # a loop clock a hair behind ours must not make the timer spin


class FaultController:
    """Changes faults and carries out what each change means for the links."""

    def __init__(
        self, *, book: FaultBook, relays: Mapping[str, LinkRelay], store: FaultStore, clock: Clock
    ) -> None:
        self.book = book
        self.relays = relays
        self.clock = clock
        self._store = store
        self._wake = asyncio.Event()

    def restore(self) -> None:
        """Put back the state file's unexpired faults (before any listener accepts)."""
        outcome = self._store.load(self.book)
        now = self.clock.monotonic()
        for fault in outcome.restored:
            remaining = fault.remaining_s(now)
            left = "until healed" if remaining is None else f"{remaining:.1f}s left"
            logger.info(
                "fault restored on link %s: %s, %s (reason: state file)", fault.link, fault.kind, left
            )
        for link in outcome.expired:
            logger.info("fault expired on link %s (reason: ran out while the relay was down)", link)
        for link in outcome.unknown:
            logger.warning("state file names link %s, which this relay does not carry: dropped", link)
        if outcome.expired or outcome.unknown:
            self._persist()

    def set_fault(self, link: str, request: FaultRequest) -> Fault:
        fault = Fault.starting(link, request, self.clock.monotonic())
        replaced = self.book.set(fault)
        reset = self.relays[link].reset_all() if fault.kind == "partition" else 0
        logger.info(
            "fault set on link %s: %s for %s (reason: %s%s); %d open connection(s) reset",
            link,
            fault.kind,
            "until healed" if request.for_s is None else f"{request.for_s:g}s",
            request.reason or "admin request",
            f"; replaces a {replaced.kind}" if replaced is not None else "",
            reset,
        )
        self._changed()
        return fault

    def heal(self, link: str) -> Fault | None:
        healed = self.book.heal(link)
        if healed is not None:
            logger.info("fault healed on link %s: %s (reason: admin request)", link, healed.kind)
            self._changed()
        return healed

    def heal_all(self) -> list[Fault]:
        healed = self.book.heal_all()
        for fault in healed:
            logger.info(
                "fault healed on link %s: %s (reason: admin request, all links)", fault.link, fault.kind
            )
        if healed:
            self._changed()
        return healed

    def expire_due(self) -> list[Fault]:
        expired = self.book.expire(self.clock.monotonic())
        for fault in expired:
            assert fault.expires_at is not None
            logger.info(
                "fault expired on link %s: %s (reason: its %gs ran out)",
                fault.link,
                fault.kind,
                round(fault.expires_at - fault.set_at, 3),
            )
        if expired:
            self._persist()
        return expired

    async def expire_forever(self) -> None:
        """Expire each fault when its time comes; woken early by every change."""
        while True:
            self._wake.clear()
            self.expire_due()
            deadline = self.book.next_expiry()
            delay = None if deadline is None else max(deadline - self.clock.monotonic(), _MIN_TIMER_S)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(delay):
                    await self._wake.wait()

    def _changed(self) -> None:
        self._persist()
        self._wake.set()

    def _persist(self) -> None:
        try:
            self._store.save(self.book)
        except OSError as exc:
            # The fault is in force all the same; only a restart would forget it.
            logger.error("cannot write the fault state file: %s", exc)
