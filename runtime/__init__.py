"""Shared process runtime for every EdgeCDN process: ready reporting, signals, CLI helpers, logging."""
