"""The `edgecdn` command: starts a whole local world, queries the world model, generates load."""
