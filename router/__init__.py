"""The front-door process: sends each client to the best healthy edge region and emulates the WAN."""
