"""The `[metrics]` section of config.toml: where the daemon serves /metrics and /healthz."""

from __future__ import annotations

from dataclasses import dataclass

from watchdog.tomlreader import TableReader

DEFAULT_ADDRESS = "127.0.0.1"
# 9464 is the port commonly used by Prometheus exporters of applications (not taken by
# any of Prometheus's own components), so a scrape config can name it without surprise.
DEFAULT_PORT = 9464


@dataclass(frozen=True)
class MetricsSettings:
    """Whether and where the daemon serves its metrics; port 0 picks a free port."""

    enabled: bool = True
    address: str = DEFAULT_ADDRESS
    port: int = DEFAULT_PORT

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port!r}")


def read_metrics_settings(root: TableReader) -> MetricsSettings:
    """Read `[metrics]`; problems are recorded on the reader, defaults returned for them."""
    table = root.table("metrics")
    enabled = table.boolean("enabled", True)
    address = table.ip_address("address", DEFAULT_ADDRESS)
    port = table.port("port", DEFAULT_PORT)
    table.reject_unknown_keys()
    return MetricsSettings(enabled=enabled, address=address, port=port)
