"""How a process tells whoever started it that it is ready, and on which address.

A supervisor (``edgecdn up``, a test fixture) starts a process with ``--ready-file PATH``;
once every listener is bound, the process writes one JSON object to that path atomically
(write to a temporary file, then rename), so a reader never sees half a file. The object
always has ``service``, ``pid`` and ``addresses`` (name -> ``host:port`` or URL).
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from runtime.errors import ReadyFileError
from runtime.files import write_atomically

ReadyCallback = Callable[[Mapping[str, str]], None]
"""Called by a process's ``run()`` once its listeners are bound, with name -> address."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ReadyReport:
    """What a process reported when it became ready."""

    service: str
    pid: int
    addresses: Mapping[str, str] = field(default_factory=dict)
    extra: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(
            {
                "service": self.service,
                "pid": self.pid,
                "addresses": dict(self.addresses),
                **dict(self.extra),
            }
        )

    @classmethod
    def from_json(cls, text: str, *, source: str) -> ReadyReport:
        try:
            data = json.loads(text)
            service = str(data.pop("service"))
            pid = int(data.pop("pid"))
            addresses = {str(k): str(v) for k, v in dict(data.pop("addresses")).items()}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise ReadyFileError(path=source, reason=f"not a ready report: {exc}") from exc
        return cls(service=service, pid=pid, addresses=addresses, extra=data)


def write_ready_file(path: Path, report: ReadyReport) -> None:
    """Atomically write ``report`` to ``path``."""
    write_atomically(path, report.to_json())


def read_ready_file(path: Path) -> ReadyReport | None:
    """The report at ``path``, or None while the process has not written it yet."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return ReadyReport.from_json(text, source=str(path))


def ready_file_reporter(service: str, path: Path | None) -> ReadyCallback:
    """A ``ready`` callback for ``run()`` that writes the ready file (if any) and logs."""

    def report(addresses: Mapping[str, str]) -> None:
        if path is not None:
            write_ready_file(path, ReadyReport(service=service, pid=os.getpid(), addresses=dict(addresses)))

    return report
