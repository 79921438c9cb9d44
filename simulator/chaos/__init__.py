"""``edgecdn chaos``: fault injection at the OS and network edge of a running local world.

``faults`` is the pure model (what a fault is, which processes a target names),
``scenario`` parses timelines of faults (pure), ``injector`` carries faults out (signals
to the world's processes, the fault relay's and the router's admin APIs) and writes each
to the world's event log.
"""
