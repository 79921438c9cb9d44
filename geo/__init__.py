"""Pure geography library: IP to location, the world model, the latency model, routing inputs."""
