"""Grafana dashboards for the wall, a department and the daemon's health (generated)."""
