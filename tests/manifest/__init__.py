"""Tests of the manifest library."""
