"""The live view: elapsed time, achieved rate, p50/p99 of the last second, errors.

Ticks come from every worker once a second; their interval histograms are added, so the
live percentiles are those of all workers together. On a terminal the view is a rich
``Live`` line; otherwise a plain line every few seconds (logs, CI). A fault or restart
appended to the world's events file during the run is printed as it appears (the file is
looked at once a second, with the view).
"""

from __future__ import annotations

import time
from types import TracebackType

from rich.console import Console
from rich.live import Live
from rich.text import Text

from runtime.events import WorldEvent
from simulator.load.engine import Tick
from simulator.load.events import EventTail, event_label
from simulator.load.recorder import decode_histogram, new_histogram

PLAIN_EVERY_S = 5.0


class Progress:
    """Collects ticks; renders on a terminal, or prints a line now and then."""

    def __init__(
        self, console: Console, *, duration_s: float, workers: int, events: EventTail | None = None
    ) -> None:
        self.console = console
        self.events = events
        self.duration_s = duration_s
        self.workers = workers
        self.requests = 0
        self.errors = 0
        self._window = new_histogram()
        self._window_requests = 0
        self._window_started = time.monotonic()
        self._started = time.monotonic()
        self._last_line = ""
        self._last_plain = 0.0
        self._seen: set[int] = set()
        self._live: Live | None = Live(console=console, auto_refresh=False) if console.is_terminal else None

    def __enter__(self) -> Progress:
        if self._live is not None:
            self._live.__enter__()
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._live is not None:
            self._live.__exit__(kind, exc, tb)

    def tick(self, tick: Tick) -> None:
        self.requests += tick.requests
        self.errors += tick.errors
        self._window_requests += tick.requests
        self._window.add(decode_histogram(tick.latency_hdr))
        self._seen.add(tick.worker)
        if len(self._seen) >= self.workers:  # every worker reported this second: show it
            self._render()
            self._seen.clear()

    def _render(self) -> None:
        now = time.monotonic()
        window_s = max(now - self._window_started, 1e-3)
        rate = self._window_requests / window_s
        p50 = self._window.get_value_at_percentile(50) / 1000
        p99 = self._window.get_value_at_percentile(99) / 1000
        elapsed = now - self._started
        line = (
            f"{elapsed:5.0f}/{self.duration_s:.0f} s {self.requests:>9,} sent {rate:>7,.0f}/s "
            f"p50 {p50:7.2f} ms p99 {p99:7.2f} ms errors {self.errors:,}"
        )
        self._window.reset()
        self._window_requests = 0
        self._window_started = now
        self._last_line = line
        if self.events is not None:
            for event in self.events.poll():
                self._print_event(event, now)
        if self._live is not None:
            self._live.update(Text(line), refresh=True)
        elif now - self._last_plain >= PLAIN_EVERY_S:
            self._last_plain = now
            self.console.print(line, highlight=False)

    def _print_event(self, event: WorldEvent, now: float) -> None:
        # the wall clock stamped the event; place it by how long ago that was, in run time
        at = now - self._started - max(0.0, time.time() - event.ts)
        style = "bold red" if event.source == "chaos" else "magenta"
        text = Text(f"{max(at, 0.0):5.0f} s ", style="dim")
        text.append(f"{event.source}: {event_label(event.kind, event.target)}", style=style)
        if event.message:
            text.append(f" - {event.message}")
        self.console.print(text, highlight=False)
