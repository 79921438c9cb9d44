"""The gRPC control-plane process: modules, apps, node sessions, rollouts, traces; and edgectl."""
