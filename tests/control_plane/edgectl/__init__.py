"""edgectl tests by command group."""
