"""Whether the daemon is healthy: the last cycle of every source succeeded recently."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

STALE_INTERVALS = 3  # a source is unhealthy after this many poll intervals without success


@dataclass(frozen=True)
class SourceHealth:
    """The last finished cycle of one source, as the daemon saw it."""

    finished_at: datetime
    error: str | None
    last_success_at: datetime | None


class HealthTracker:
    """Cycle outcomes per source, read by /healthz (thread-safe: cycles run in a pool)."""

    def __init__(self, intervals: dict[str, timedelta], started_at: datetime) -> None:
        self.intervals = dict(intervals)
        self.started_at = started_at
        self._last: dict[str, SourceHealth] = {}
        self._lock = threading.Lock()

    def record(self, source: str, at: datetime, error: str | None) -> None:
        with self._lock:
            before = self._last.get(source)
            success = at if error is None else (before.last_success_at if before else None)
            self._last[source] = SourceHealth(at, error, success)

    def problems(self, now: datetime) -> list[str]:
        """Why the daemon is unhealthy, one line per source; empty when healthy."""
        with self._lock:
            last = dict(self._last)
        problems: list[str] = []
        for source, interval in self.intervals.items():
            limit = interval * STALE_INTERVALS
            health = last.get(source)
            if health is None:
                problems.append(
                    f'source "{source}": no cycle finished since the daemon started '
                    f"at {self.started_at.isoformat(timespec='seconds')}"
                )
                continue
            if health.error is not None:
                problems.append(f'source "{source}": last cycle failed: {health.error}')
                continue
            assert health.last_success_at is not None
            age = now - health.last_success_at
            if age > limit:
                problems.append(
                    f'source "{source}": last successful cycle {int(age.total_seconds())}s ago, '
                    f"more than {STALE_INTERVALS} poll intervals ({int(limit.total_seconds())}s)"
                )
        return problems
