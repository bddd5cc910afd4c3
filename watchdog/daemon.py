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
from watchdog.leadership import (
    DELIVERY,
    Leadership,
    StoreInUseError,
    leadership_for,
    led_by,
    source_unit,
)
from watchdog.metrics.service import MetricsService
from watchdog.notices.delivery import schedule_delivery
from watchdog.web.server import WebService

log = logging.getLogger(__name__)

MAX_BACKOFF_FACTOR = 16  # a failing source is retried at most every 16 poll intervals


class Daemon:
    """Schedules cycles for every source until told to stop."""

    def __init__(self, watchdog: Watchdog) -> None:
        self.watchdog = watchdog
        self.stop_requested = threading.Event()
        self._retry_after: dict[str, float] = {}
        self._failures: dict[str, int] = {}
        # Set by run(): which sources and the delivery this daemon leads (watchdog.leadership).
        self.leadership: Leadership | None = None
        self.metrics = MetricsService(watchdog, watchdog.settings.metrics)
        self.web = WebService(watchdog.store, watchdog.settings.web)

    def cycle(self, source: str) -> CycleReport | None:
        """One scheduled run: skipped while the source is backing off after failures."""
        if time.monotonic() < self._retry_after.get(source, 0.0):
            return None
        if self.leadership is not None and not self.leadership.holds(source_unit(source)):
            return None  # another daemon polls this source
        report = self.watchdog.run_cycle(source)
        self._record_metrics(report)
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
        try:
            self.leadership = leadership_for(self.watchdog.store)
        except StoreInUseError as exc:
            log.error("refusing to start: %s", exc)
            self.watchdog.close()
            return 1
        scheduler = BackgroundScheduler(
            timezone=UTC,
            # One worker per source (up to 8) and one for the delivery job.
            executors={"default": ThreadPoolExecutor(max_workers=min(len(sources), 8) + 1)},
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
        settings = self.watchdog.settings
        schedule_delivery(scheduler, self.watchdog.store, settings.mail, self.stop_requested.is_set)
        delivery = scheduler.get_job("deliver")
        if delivery is not None:  # delivers only while this daemon leads the delivery
            scheduler.modify_job("deliver", func=led_by(self.leadership, DELIVERY, delivery.func))
        self._install_signal_handlers()
        log.info(
            "watchdog started: %d source(s), store %s",
            len(sources),
            self.watchdog.store.url.render_as_string(hide_password=True),
        )
        self.metrics.start()
        self.web.start()
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
            self.web.stop()
            self.metrics.stop()
            self.leadership.close()
            self.watchdog.close()
        log.info("watchdog stopped")
        return 0

    def _record_metrics(self, report: CycleReport) -> None:
        try:
            self.metrics.after_cycle(report)
        except Exception:  # the figures wait for the next cycle; the cycle itself stands
            log.exception('source "%s": metrics not updated after the cycle', report.source)

    def _install_signal_handlers(self) -> None:
        def request_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("received %s", signal.Signals(signum).name)
            self.stop_requested.set()

        signal.signal(signal.SIGTERM, request_stop)
        signal.signal(signal.SIGINT, request_stop)
