"""The long-running daemon: one poll-and-evaluate job per source on APScheduler.

SIGTERM or SIGINT sets a flag; the scheduler then stops taking new runs, waits for the
cycles in flight to commit, and the process exits 0 with "stopped". A crash logs
differently ("crashed") and exits non-zero.
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import UTC, datetime
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from watchdog.app import CycleReport, Watchdog

log = logging.getLogger(__name__)

MAX_BACKOFF_FACTOR = 16  # a failing source is retried at most every 16 poll intervals


class Daemon:
    """Schedules cycles for every source until told to stop."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog
        self.stop_requested = threading.Event()
        self._retry_after: dict[str, float] = {}
        self._failures: dict[str, int] = {}

    def cycle(self, source: str) -> CycleReport | None:
        """One scheduled run: skipped while the source is backing off after failures."""
        if time.monotonic() < self._retry_after.get(source, 0.0):
            return None
        report = self.watchdog.run_cycle(source)
        if report.error is None:
            self._failures.pop(source, None)
            self._retry_after.pop(source, None)
            log.info("%s", report.summary())
            return report
        failures = self._failures.get(source, 0) + 1
        self._failures[source] = failures
        interval = self.watchdog.settings.source(source).poll_interval.total_seconds()
        factor = min(2 ** (failures - 1), MAX_BACKOFF_FACTOR)
        # The scheduler already waits one interval; back off the extra factor on top.
        self._retry_after[source] = time.monotonic() + interval * (factor - 1)
        log.error(
            "%s (failure %d in a row; next try in about %ds)",
            report.summary(),
            failures,
            int(interval * factor),
        )
        return report

    def run(self) -> int:
        """Run until SIGTERM/SIGINT; return the process exit status."""
        sources = self.watchdog.settings.sources
        scheduler = BackgroundScheduler(
            timezone=UTC,
            executors={"default": ThreadPoolExecutor(max_workers=max(1, min(len(sources), 8)))},
            job_defaults={"coalesce": True, "max_instances": 1},
        )
        now = datetime.now(UTC)
        for source in sources:
            interval = source.poll_interval.total_seconds()
            scheduler.add_job(
                self.cycle,
                "interval",
                seconds=interval,
                args=[source.name],
                id=f"cycle:{source.name}",
                name=f"poll and evaluate {source.name}",
                next_run_time=now,
                misfire_grace_time=max(1, int(interval)),
            )
        self._install_signal_handlers()
        log.info(
            "watchdog started: %d source(s), store %s",
            len(sources),
            self.watchdog.store.url.render_as_string(hide_password=True),
        )
        scheduler.start()
        try:
            self.stop_requested.wait()
            log.info("stop requested: finishing cycles in flight")
            scheduler.shutdown(wait=True)
        except BaseException:
            log.critical("watchdog crashed", exc_info=True)
            scheduler.shutdown(wait=False)
            raise
        finally:
            self.watchdog.close()
        log.info("watchdog stopped")
        return 0

    def _install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop_requested.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
