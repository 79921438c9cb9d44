"""Generated code for the edgecdn.v1 wire API; never edit by hand, run `make protos`."""
