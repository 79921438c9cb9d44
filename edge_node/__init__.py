"""The edge server process: aiohttp data plane running wasm handlers with geo headers."""
