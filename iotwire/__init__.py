"""The IoT gateway wire contract (docs/iot.md), shared by the gateway, the control plane's
coordinator and the edge nodes: topic names, payload parsing and encoding, and how to open an
MQTT session to the world's broker. Pure code except ``link.open_client`` (builds a client,
does no I/O until entered)."""
