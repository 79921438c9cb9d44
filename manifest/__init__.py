"""App manifests: parse and validate Spin-like app manifests (TOML) shared by nodes and the control plane."""
