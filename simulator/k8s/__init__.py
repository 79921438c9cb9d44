"""Kubernetes manifests from the world file (``edgecdn k8s render``).

The same world file that lays out the local simulation lays out a cluster: a region of the
world becomes an edge-node Deployment pinned to that region's Kubernetes nodes, its
gateways a Deployment beside it. Everything here is pure: a frozen ``World`` and
``RenderOptions`` in, plain dictionaries (Kubernetes documents) out; ``cmd`` is the
adapter that reads the world file and writes YAML. docs/kubernetes.md tells the story.
"""
