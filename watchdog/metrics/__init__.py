"""Prometheus metrics of the daemon: definitions, store snapshot, HTTP endpoint."""
