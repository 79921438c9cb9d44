"""What the kernel says of a process of the world (Linux /proc): its run state and parent."""

from __future__ import annotations

from pathlib import Path


def _stat_fields(pid: int) -> list[str] | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text(encoding="ascii", errors="replace")
    except OSError:
        return None
    # The command name (2nd field) is in parentheses and may hold spaces: fields follow it.
    return stat.rpartition(")")[2].split()


def run_state(pid: int) -> str | None:
    """The kernel's one-letter state of ``pid`` (R, S, T, ...); None when it is gone or a zombie."""
    fields = _stat_fields(pid)
    if not fields or fields[0] == "Z":
        return None
    return fields[0]


def is_frozen(pid: int) -> bool:
    """True while ``pid`` is stopped by a signal (SIGSTOP: ``edgecdn chaos freeze``)."""
    return run_state(pid) in {"T", "t"}


def parent_pid(pid: int) -> int | None:
    fields = _stat_fields(pid)
    if not fields or len(fields) < 2:
        return None
    try:
        return int(fields[1])
    except ValueError:
        return None
