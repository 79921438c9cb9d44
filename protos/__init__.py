"""Wire API of EdgeCDN: the .proto sources under edgecdn/v1 and the Python generated from them."""
