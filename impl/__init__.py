"""The networked implementation: sans-IO cores, storage, network, applications, simulator."""
