"""The auditors' HTTP API and web console, served by the daemon."""
