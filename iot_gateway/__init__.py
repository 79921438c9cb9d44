"""The IoT gateway process: simulated sensors, batches through a wasm telemetry module, MQTT
presence, commands and over-the-air module updates (docs/iot-gateway.md, docs/iot.md)."""
