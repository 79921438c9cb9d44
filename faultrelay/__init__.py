"""The fault-injecting TCP relay process: sits between a region's edge nodes and the control
plane, relays every connection byte for byte, and cuts a link on request (a partition)."""
