"""Generated protobuf package root (see protos/generate.py)."""
