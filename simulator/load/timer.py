"""Sleeping until an exact moment on the event loop, without spinning.

asyncio's timers go through ``epoll_wait``, whose timeout is whole milliseconds: a sleep of
300 µs lasts a millisecond. An open-loop generator must send each request at its intended
time, or the lateness shows as latency; the only way to hit sub-millisecond times with
plain asyncio is to keep the CPU busy yielding to the loop until the time comes, which at
a few hundred requests per second burns a whole core (stolen from the servers under test
on the same machine) and keeps the client awake when answers arrive, which no real
client is and wrk is not either.

On Linux a ``timerfd`` has nanosecond resolution and is just another file descriptor the
loop watches: the dispatcher sleeps in ``epoll_wait`` until the timer fires, answers that
arrive meanwhile are handled as usual, and the process is idle in between. Elsewhere (or
if the timerfd cannot be made) :class:`PreciseSleeper` falls back to sleeping to within
``SPIN_S`` of the moment and yielding to the loop for the rest.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import ctypes.util
import logging
import os
import sys

logger = logging.getLogger(__name__)

# The last stretch before a due time is spent yielding to the loop rather than sleeping.
# Without a timerfd: enough to cover epoll's millisecond rounding. With one: enough to
# cover how late a timer wakes the process, which is learnt as the run goes (a few µs on
# bare metal, 100 µs and more on a busy VM): the margin is a high percentile of the last
# wake-ups' lateness, so the dispatcher rarely sends late and is asleep most of the time.
SPIN_S = 0.002
FIRST_MARGIN_S = 0.0003
MIN_MARGIN_S = 0.00002
LATENESS_WINDOW = 256
LATENESS_QUANTILE = 0.9

_CLOCK_MONOTONIC = 1  # what time.monotonic() and asyncio's loop.time() read
_TFD_TIMER_ABSTIME = 1
_TFD_NONBLOCK = os.O_NONBLOCK
_TFD_CLOEXEC = os.O_CLOEXEC


class _Timespec(ctypes.Structure):
    _fields_ = (("tv_sec", ctypes.c_long), ("tv_nsec", ctypes.c_long))


class _Itimerspec(ctypes.Structure):
    _fields_ = (("it_interval", _Timespec), ("it_value", _Timespec))


class _TimerFd:
    """A one-shot CLOCK_MONOTONIC timerfd, armed with absolute times."""

    def __init__(self) -> None:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        self._settime = libc.timerfd_settime
        self._settime.argtypes = (
            ctypes.c_int,
            ctypes.c_int,
            ctypes.POINTER(_Itimerspec),
            ctypes.POINTER(_Itimerspec),
        )
        self._settime.restype = ctypes.c_int
        create = libc.timerfd_create
        create.argtypes = (ctypes.c_int, ctypes.c_int)
        create.restype = ctypes.c_int
        self.fd = create(_CLOCK_MONOTONIC, _TFD_NONBLOCK | _TFD_CLOEXEC)
        if self.fd < 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"timerfd_create: {os.strerror(errno)}")
        self._spec = _Itimerspec()

    def arm(self, when: float) -> None:
        seconds = int(when)
        self._spec.it_value.tv_sec = seconds
        self._spec.it_value.tv_nsec = max(1, int((when - seconds) * 1e9))  # 0 would disarm
        if self._settime(self.fd, _TFD_TIMER_ABSTIME, ctypes.byref(self._spec), None) != 0:
            errno = ctypes.get_errno()
            raise OSError(errno, f"timerfd_settime: {os.strerror(errno)}")

    def clear(self) -> None:
        with contextlib.suppress(BlockingIOError):  # already read: the expiry count is not needed
            os.read(self.fd, 8)

    def close(self) -> None:
        os.close(self.fd)


class PreciseSleeper:
    """``await sleeper.until(when)``: returns at ``when`` (loop time), give or take a few µs."""

    def __init__(self, loop: asyncio.AbstractEventLoop, *, use_timerfd: bool = True) -> None:
        self._loop = loop
        self._timer: _TimerFd | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._armed_for = 0.0
        self._lateness: collections.deque[float] = collections.deque(maxlen=LATENESS_WINDOW)
        self._wakes = 0
        self.margin_s = FIRST_MARGIN_S
        if use_timerfd and sys.platform.startswith("linux"):
            try:
                self._timer = _TimerFd()
                loop.add_reader(self._timer.fd, self._fired)
            except (OSError, AttributeError, NotImplementedError) as exc:
                logger.info("no timerfd (%s): short waits will yield to the loop instead", exc)
                if self._timer is not None:
                    self._timer.close()
                self._timer = None

    @property
    def precise(self) -> bool:
        """Whether sub-millisecond sleeps sleep (else they keep the CPU busy)."""
        return self._timer is not None

    async def until(self, when: float) -> None:
        loop = self._loop
        margin = self.margin_s if self._timer is not None else SPIN_S
        if self._timer is not None and when - loop.time() > margin:
            self._waiter = loop.create_future()
            self._armed_for = when - margin
            self._timer.arm(self._armed_for)
            try:
                await self._waiter
            finally:
                self._waiter = None
        elif when - loop.time() > margin:
            await asyncio.sleep(when - loop.time() - margin)
        # The last stretch: yield to the loop (I/O still runs). No Event can be set at a
        # moment more precisely than this.
        while loop.time() < when:  # noqa: ASYNC110
            await asyncio.sleep(0)

    def close(self) -> None:
        if self._timer is not None:
            self._loop.remove_reader(self._timer.fd)
            self._timer.close()
            self._timer = None

    def _fired(self) -> None:
        assert self._timer is not None
        self._timer.clear()
        if self._waiter is not None and not self._waiter.done():
            self._learn(self._loop.time() - self._armed_for)
            self._waiter.set_result(None)

    def _learn(self, lateness: float) -> None:
        self._lateness.append(lateness)
        self._wakes += 1
        if self._wakes % 32 == 0:  # re-sorting 256 floats every 32 wake-ups is cheap
            ordered = sorted(self._lateness)
            quantile = ordered[int(len(ordered) * LATENESS_QUANTILE)]
            self.margin_s = min(SPIN_S, max(MIN_MARGIN_S, quantile * 1.2))
