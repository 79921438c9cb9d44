"""Typed access to a parsed TOML table that knows where each value lives.

Every getter takes a key and checks the type; a wrong or missing value becomes a
:class:`WorldFileError` naming the file and the dotted key (``regions[2].latitude``), so
the loader itself stays a plain list of fields. Unknown keys are errors too: a typo such
as ``edge_node = 3`` must not silently fall back to the default.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

from geo.errors import WorldFileError

_MISSING: Any = object()


class TableReader:
    """Read one TOML table; ``prefix`` is its dotted location in the file."""

    def __init__(self, table: dict[str, Any], *, source: Path, prefix: str = "") -> None:
        self._table = table
        self._source = source
        self._prefix = prefix
        self._seen: set[str] = set()

    @property
    def source(self) -> Path:
        return self._source

    def field_prefix(self) -> str:
        """What to put before a field name of this table: ``regions[2].`` (empty at the root)."""
        return f"{self._prefix}." if self._prefix else ""

    def key(self, name: str) -> str:
        return f"{self._prefix}.{name}" if self._prefix else name

    def fail(self, name: str, reason: str) -> NoReturn:
        raise WorldFileError(self._source, self.key(name), reason)

    def _get(self, name: str, default: Any) -> Any:
        self._seen.add(name)
        if name in self._table:
            return self._table[name]
        if default is _MISSING:
            self.fail(name, "is required")
        return default

    def string(self, name: str, default: str = _MISSING) -> str:
        value = self._get(name, default)
        if not isinstance(value, str):
            self.fail(name, f"must be a string, not {_type_name(value)}")
        if name in self._table and not value.strip():
            self.fail(name, "must not be empty")
        return value

    def integer(self, name: str, default: int = _MISSING) -> int:
        value = self._get(name, default)
        # bool is an int subclass in Python; in TOML `true` is never a count.
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, f"must be an integer, not {_type_name(value)}")
        return value

    def number(self, name: str, default: float = _MISSING) -> float:
        value = self._get(name, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.fail(name, f"must be a number, not {_type_name(value)}")
        if not math.isfinite(value):
            self.fail(name, f"must be a finite number, not {value}")
        return float(value)

    def strings(self, name: str, default: tuple[str, ...] = _MISSING) -> tuple[str, ...]:
        value = self._get(name, default)
        if isinstance(value, tuple):
            return value
        if not isinstance(value, list):
            self.fail(name, f"must be an array of strings, not {_type_name(value)}")
        for index, item in enumerate(value):
            if not isinstance(item, str):
                raise WorldFileError(
                    self._source, f"{self.key(name)}[{index}]", f"must be a string, not {_type_name(item)}"
                )
        return tuple(value)

    def table(self, name: str, default: dict[str, Any] = _MISSING) -> TableReader:
        value = self._get(name, default)
        if not isinstance(value, dict):
            self.fail(name, f"must be a table, not {_type_name(value)}")
        return TableReader(value, source=self._source, prefix=self.key(name))

    def tables(self, name: str) -> Iterator[TableReader]:
        """The entries of an array of tables (``[[name]]``), each with its index in the key."""
        value = self._get(name, _MISSING)
        if not isinstance(value, list) or not value:
            self.fail(name, f"must be a non-empty array of tables ([[{name}]]), not {_type_name(value)}")
        for index, item in enumerate(value):
            key = f"{self.key(name)}[{index}]"
            if not isinstance(item, dict):
                raise WorldFileError(self._source, key, f"must be a table, not {_type_name(item)}")
            yield TableReader(item, source=self._source, prefix=key)

    def reject_unknown(self) -> None:
        """Fail on the first key that no getter asked for (after all reads)."""
        for name in self._table:
            if name not in self._seen:
                expected = ", ".join(sorted(self._seen))
                self.fail(name, f"unknown key (expected one of: {expected})")


def _type_name(value: Any) -> str:
    names = {
        str: "a string",
        int: "an integer",
        float: "a number",
        bool: "a boolean",
        list: "an array",
        dict: "a table",
    }
    if value is _MISSING:
        return "nothing"
    return names.get(type(value), type(value).__name__)
