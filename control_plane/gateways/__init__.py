"""The control plane's IoT gateway coordinator (docs/iot.md is the contract)."""
