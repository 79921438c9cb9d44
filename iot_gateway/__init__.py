"""The IoT gateway process: MQTT client running a wasm telemetry module (filled by the IoT issue)."""
