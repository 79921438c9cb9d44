"""``edgectl``: the operator CLI for the control plane (modules, apps, deployments, nodes)."""
