"""Job networks: built-in `bridge`, `isolated`, `none` and user networks (bridges, addresses,
packet filter), joined to jobs through the "networks" attachment."""
