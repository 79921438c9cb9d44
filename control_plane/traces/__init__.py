"""Trace collection in the control plane: OTLP decoding, the bounded trace store, rolling
per-(region, app version, route) statistics, forwarding, and the gRPC services over them."""
