"""Errors of the broker process."""

from __future__ import annotations


class BrokerError(Exception):
    """Base class for the broker process's errors."""


class BrokerConfigError(BrokerError):
    """The broker's configuration (users, port, files) cannot be used."""


class BrokerFailedError(BrokerError):
    """The broker did not start, or stopped by itself."""
