"""Fixtures of the cpclient tests: the same real in-process control plane as the control-plane tests."""

from tests.control_plane.conftest import channel, live

__all__ = ["channel", "live"]
