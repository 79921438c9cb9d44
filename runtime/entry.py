"""The ``main()`` every long-running process shares: logging, the ready-file reporter, serve
until SIGINT/SIGTERM, and a fatal error as ``prog: message`` with exit status 1."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

from runtime.cli import configure_logging, fail
from runtime.process import serve_until_signalled
from runtime.ready import ready_file_reporter


class ProcessConfig(Protocol):
    @property
    def ready_file(self) -> Path | None: ...


def serve_process(
    *,
    prog: str,
    service: str,
    config: ProcessConfig,
    log_level: str,
    run: Callable[..., Awaitable[None]],
    fatal: tuple[type[Exception], ...],
) -> int:
    """Serve ``run(config, ready=..., stop=...)`` until signalled; ``fatal`` errors end it with 1."""
    configure_logging(log_level)
    ready = ready_file_reporter(service, config.ready_file)
    try:
        serve_until_signalled(lambda stop: run(config, ready=ready, stop=stop))
    except fatal as exc:
        fail(prog, str(exc), code=1)
    return 0
