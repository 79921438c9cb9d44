"""Tests of the wasm_host library."""
