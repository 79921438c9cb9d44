"""The one error a manifest can raise: it names the file, the key and the reason."""

from __future__ import annotations


class ManifestError(Exception):
    """A manifest that cannot be used; ``key`` is a dotted path such as ``module.api.memory``."""

    def __init__(self, path: str, key: str, reason: str) -> None:
        location = f"{path}: {key}" if key else path
        super().__init__(f"{location}: {reason}")
        self.path = path
        self.key = key
        self.reason = reason
