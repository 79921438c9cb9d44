"""What a node serves right now. Swapping the app is one reference assignment: a request
reads the app once, at routing, and finishes on that version even if a swap happens."""

from __future__ import annotations

from edge_node.app import LoadedApp


class NodeState:
    def __init__(self, app: LoadedApp | None = None) -> None:
        self._app = app

    @property
    def app(self) -> LoadedApp | None:
        return self._app

    def swap(self, app: LoadedApp) -> LoadedApp | None:
        """Serve ``app`` from now on; returns the app it replaces."""
        previous, self._app = self._app, app
        return previous
