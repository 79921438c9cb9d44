"""Errors of the control plane; the gRPC adapter maps them to status codes."""

from __future__ import annotations


class ControlPlaneError(Exception):
    """Base class for control-plane errors."""
