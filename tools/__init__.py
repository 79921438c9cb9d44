"""Developer tooling that is not part of any process: build helpers run by the Makefile."""
