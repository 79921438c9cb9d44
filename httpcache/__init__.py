"""The shared HTTP cache (RFC 9111 with RFC 9110, RFC 5861 and RFC 9213): pure policy and storage.

A library, like ``geo``: no sockets, no event loop. ``policy`` decides (what to store, how
fresh, which variant, what to ask upstream, what to answer); ``store`` and ``disk`` keep
entries bounded by bytes. The edge node (``edge_node.cache_flow``) drives them.
"""
